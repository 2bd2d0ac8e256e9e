variable "cluster_name" {
  description = "Cluster name: route tables and resources carry the tag kubernetes.io/cluster/<name> = owned."
  type        = string
  validation {
    # IAM name_prefix allows 38 characters ("<name>-flow-logs-": 27); VM and host names become
    # Kubernetes node names; cni-cloud's Azure route names are "<name>--<cidr>".
    condition     = length(var.cluster_name) <= 27 && can(regex("^[a-z](-?[a-z0-9])*$", var.cluster_name))
    error_message = "cluster_name must be 1 to 27 lowercase letters, digits and single hyphens, starting with a letter and ending with a letter or digit."
  }
}

variable "vpc_cidr" {
  description = "IPv4 CIDR of the VPC."
  type        = string
  default     = "10.0.0.0/16"
}

variable "availability_zones" {
  description = "Availability zones: one private node subnet and one route table per zone."
  type        = list(string)
  validation {
    condition     = length(var.availability_zones) >= 1
    error_message = "At least one availability zone is needed."
  }
}

variable "cluster_cidrs" {
  description = "Pod CIDRs: the node security group admits traffic from them (pods talk to pods on other nodes with their own addresses)."
  type        = list(string)
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones (cheaper) instead of one per zone (zone-independent egress)."
  type        = bool
  default     = true
}

variable "flow_log_retention_days" {
  description = "Days to keep the VPC flow logs in CloudWatch Logs."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
