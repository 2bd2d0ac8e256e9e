variable "cluster_name" {
  description = "Cluster name, used in resource names and tags."
  type        = string
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
