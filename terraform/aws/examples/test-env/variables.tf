variable "region" {
  description = "AWS region."
  type        = string
  default     = "eu-west-1"
}

variable "cluster_name" {
  description = "Cluster name (tag kubernetes.io/cluster/<name>, cni-cloud's CNI_CLOUD_CLUSTER_NAME)."
  type        = string
  default     = "cni-cloud-test"
}

variable "availability_zones" {
  description = "Availability zones; null takes <region>a and <region>b."
  type        = list(string)
  default     = null
}

variable "vpc_cidr" {
  description = "VPC CIDR."
  type        = string
  default     = "10.0.0.0/16"
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
  description = "OpenSSH public key for fetching the kubeconfig."
  type        = string
}

variable "oidc_provider_arn" {
  description = "Optional IAM OIDC provider ARN: also creates the IRSA role and annotates the controller's ServiceAccount."
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
