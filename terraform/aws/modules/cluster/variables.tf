variable "cluster_name" {
  description = "Cluster name: instances and their network interfaces carry kubernetes.io/cluster/<name> = owned."
  type        = string
  validation {
    # IAM name_prefix allows 38 characters ("<name>-flow-logs-": 27); VM and host names become
    # Kubernetes node names; cni-cloud's Azure route names are "<name>--<cidr>".
    condition     = length(var.cluster_name) <= 27 && can(regex("^[a-z](-?[a-z0-9])*$", var.cluster_name))
    error_message = "cluster_name must be 1 to 27 lowercase letters, digits and single hyphens, starting with a letter and ending with a letter or digit."
  }
}

variable "subnet_ids" {
  description = "Node subnet id per availability zone (network module output private_subnet_ids); workers are spread over them."
  type        = map(string)
}

variable "security_group_id" {
  description = "Node security group id (network module output node_security_group_id)."
  type        = string
}

variable "instance_profile_name" {
  description = "Instance profile of the nodes (iam module output instance_profile_name)."
  type        = string
}

variable "worker_count" {
  description = "Number of worker instances (one control plane is always created)."
  type        = number
  default     = 2
  validation {
    condition     = var.worker_count >= 0 && floor(var.worker_count) == var.worker_count
    error_message = "worker_count must be a non-negative integer."
  }
}

variable "instance_type" {
  description = "EC2 instance type of every node."
  type        = string
  default     = "t3.medium"
}

variable "ami_id" {
  description = "AMI of the nodes; null picks the newest Canonical Ubuntu 24.04 LTS amd64 image."
  type        = string
  default     = null
}

variable "ssh_public_key" {
  description = "OpenSSH public key for the ubuntu user, used to fetch the kubeconfig through EC2 Instance Connect Endpoint."
  type        = string
}

variable "kubernetes_version" {
  description = "Kubernetes version installed with kubeadm from pkgs.k8s.io, e.g. 1.33.5."
  type        = string
  default     = "1.33.5"
}

variable "cluster_cidrs" {
  description = "Pod CIDRs (kubeadm podSubnet; node CIDRs are allocated from them)."
  type        = list(string)
}

variable "service_cidr" {
  description = "Service CIDR."
  type        = string
  default     = "10.96.0.0/12"
}

variable "vpc_cidr" {
  description = "VPC CIDR (cni-cloud's CNI_CLOUD_VPC_CIDRS)."
  type        = string
}

variable "irsa_role_arn" {
  description = "IRSA role ARN annotated on the controller's ServiceAccount; null leaves it unannotated (the controller uses the instance profile)."
  type        = string
  default     = null
}

variable "cni_cloud_image" {
  description = "Optional cni-cloud image override: { repository, tag }."
  type = object({
    repository = string
    tag        = string
  })
  default = null
}

variable "root_volume_size" {
  description = "Root volume size in GiB of every node (gp3, encrypted; the only definition of the root volume)."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
