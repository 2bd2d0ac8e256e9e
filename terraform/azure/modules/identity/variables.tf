variable "cluster_name" {
  description = "Cluster name, used in resource names."
  type        = string
  validation {
    # IAM name_prefix allows 38 characters ("<name>-flow-logs-": 27); VM and host names become
    # Kubernetes node names; cni-cloud's Azure route names are "<name>--<cidr>".
    condition     = length(var.cluster_name) <= 27 && can(regex("^[a-z](-?[a-z0-9])*$", var.cluster_name))
    error_message = "cluster_name must be 1 to 27 lowercase letters, digits and single hyphens, starting with a letter and ending with a letter or digit."
  }
}

variable "resource_group_id" {
  description = "Id of the cluster's resource group: the role's assignable scope (the role cannot be assigned outside it)."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group of the managed identity."
  type        = string
}

variable "location" {
  description = "Azure region of the managed identity."
  type        = string
}

variable "role_scopes" {
  description = "Where the resources role (route table, NIC, VM reads and writes) is assigned, by a static key (e.g. route-table, nic-worker-0, vm-worker-0 => resource id): the route tables, and the nodes' NICs and VMs."
  type        = map(string)
}

variable "linked_scopes" {
  description = "Where the linked role (subnets/join/action, publicIPAddresses/join/action: ARM checks them when the controller writes a NIC) is assigned, by a static key (e.g. subnet, public-ip-control-plane => resource id): the node subnets and the NICs' public IPs."
  type        = map(string)
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
