variable "subscription_id" {
  description = "Azure subscription to create the environment in."
  type        = string
}

variable "location" {
  description = "Azure region."
  type        = string
  default     = "westeurope"
}

variable "cluster_name" {
  description = "Cluster name (resource names, cni-cloud's CNI_CLOUD_CLUSTER_NAME)."
  type        = string
  default     = "cni-cloud-test"
}

variable "vnet_cidr" {
  description = "VNet address space."
  type        = string
  default     = "10.1.0.0/16"
}

variable "subnet_cidr" {
  description = "Node subnet."
  type        = string
  default     = "10.1.0.0/20"
}

variable "cluster_cidrs" {
  description = "Pod CIDRs."
  type        = list(string)
  default     = ["10.244.0.0/16"]
}

variable "worker_count" {
  description = "Number of workers."
  type        = number
  default     = 2
}

variable "ssh_public_key" {
  description = "OpenSSH public key for the VMs' admin user."
  type        = string
}

variable "admin_cidrs" {
  description = "Source CIDRs allowed to SSH to the control plane (your address, e.g. [\"203.0.113.7/32\"])."
  type        = list(string)
}

variable "encryption_at_host" {
  description = "Encrypt the VMs' temporary disks and caches on the host. Register the subscription feature Microsoft.Compute/EncryptionAtHost before setting it (terraform/README.md): apply fails otherwise."
  type        = bool
  default     = false
}

variable "cni_cloud_image" {
  description = "Optional cni-cloud image override: { repository, tag }."
  type = object({
    repository = string
    tag        = string
  })
  default = null
}
