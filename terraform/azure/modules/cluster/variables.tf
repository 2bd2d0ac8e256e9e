variable "cluster_name" {
  description = "Cluster name: VM names, cni-cloud's CNI_CLOUD_CLUSTER_NAME (its route-name prefix)."
  type        = string
  validation {
    # IAM name_prefix allows 38 characters ("<name>-flow-logs-": 27); VM and host names become
    # Kubernetes node names; cni-cloud's Azure route names are "<name>--<cidr>".
    condition     = length(var.cluster_name) <= 27 && can(regex("^[a-z](-?[a-z0-9])*$", var.cluster_name))
    error_message = "cluster_name must be 1 to 27 lowercase letters, digits and single hyphens, starting with a letter and ending with a letter or digit."
  }
}

variable "resource_group_name" {
  description = "Resource group of the VMs."
  type        = string
}

variable "location" {
  description = "Azure region."
  type        = string
}

variable "subscription_id" {
  description = "Subscription id, for the nodes' providerIDs (azure:///subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines/<name>)."
  type        = string
}

variable "subnet_id" {
  description = "Node subnet id (network module output subnet_id)."
  type        = string
}

variable "route_table_ids" {
  description = "Route tables cni-cloud manages (CNI_CLOUD_ROUTE_TABLES)."
  type        = list(string)
}

variable "identity_id" {
  description = "Resource id of the controller's user-assigned managed identity, attached to every VM."
  type        = string
}

variable "identity_client_id" {
  description = "Client id of that identity (AZURE_CLIENT_ID for the controller)."
  type        = string
}

variable "worker_count" {
  description = "Number of worker VMs (one control plane is always created)."
  type        = number
  default     = 2
  validation {
    condition     = var.worker_count >= 0 && floor(var.worker_count) == var.worker_count
    error_message = "worker_count must be a non-negative integer."
  }
}

variable "vm_size" {
  description = "VM size of every node."
  type        = string
  default     = "Standard_D2s_v5"
}

variable "admin_username" {
  description = "Admin user of the VMs."
  type        = string
  default     = "azureuser"
}

variable "ssh_public_key" {
  description = "OpenSSH public key for the admin user (password login is disabled)."
  type        = string
}

variable "control_plane_public_ip" {
  description = "Give the control plane a public IP so admin_cidrs (network module NSG) can SSH to it for the kubeconfig."
  type        = bool
  default     = true
}

variable "encryption_at_host" {
  description = "Encrypt the VMs' temporary disks and disk caches on the host (encryption_at_host_enabled). Apply fails unless the subscription has registered the feature Microsoft.Compute/EncryptionAtHost first (`az feature register --namespace Microsoft.Compute --name EncryptionAtHost`, then `az provider register --namespace Microsoft.Compute`; see terraform/README.md)."
  type        = bool
  default     = false
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

variable "vnet_cidr" {
  description = "VNet address space (cni-cloud's CNI_CLOUD_VPC_CIDRS)."
  type        = string
}

variable "cni_cloud_image" {
  description = "Optional cni-cloud image override: { repository, tag }."
  type = object({
    repository = string
    tag        = string
  })
  default = null
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
