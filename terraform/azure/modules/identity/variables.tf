variable "cluster_name" {
  description = "Cluster name, used in resource names."
  type        = string
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
  description = "Where the role is assigned, by a static key (e.g. route-table, nic-worker-0, vm-worker-0 => resource id): the route tables, and the nodes' NICs and VMs."
  type        = map(string)
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
