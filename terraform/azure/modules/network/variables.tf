variable "cluster_name" {
  description = "Cluster name, used in resource names and tags."
  type        = string
  validation {
    # IAM name_prefix allows 38 characters ("<name>-flow-logs-": 27); VM and host names become
    # Kubernetes node names; cni-cloud's Azure route names are "<name>--<cidr>".
    condition     = length(var.cluster_name) <= 27 && can(regex("^[a-z](-?[a-z0-9])*$", var.cluster_name))
    error_message = "cluster_name must be 1 to 27 lowercase letters, digits and single hyphens, starting with a letter and ending with a letter or digit."
  }
}

variable "resource_group_name" {
  description = "Resource group holding the network."
  type        = string
}

variable "location" {
  description = "Azure region."
  type        = string
}

variable "vnet_cidr" {
  description = "VNet address space."
  type        = string
  default     = "10.1.0.0/16"
}

variable "subnet_cidr" {
  description = "Node subnet (inside vnet_cidr)."
  type        = string
  default     = "10.1.0.0/20"
}

variable "cluster_cidrs" {
  description = "Pod CIDRs: admitted by the subnet's network security group (pods keep their addresses across nodes)."
  type        = list(string)
}

variable "admin_cidrs" {
  description = "Source CIDRs allowed to SSH to the control plane (to fetch the kubeconfig). Empty allows none."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
