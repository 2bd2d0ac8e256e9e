variable "cluster_name" {
  description = "Cluster name: writes are allowed only on route tables and network interfaces tagged kubernetes.io/cluster/<name> (any value)."
  type        = string
}

variable "oidc_provider_arn" {
  description = "ARN of the cluster's IAM OIDC provider (EKS, or a self-managed issuer with the pod identity webhook). When set, an IRSA role for the controller's ServiceAccount is created too."
  type        = string
  default     = null
}

variable "service_account" {
  description = "Namespace and name of the controller's ServiceAccount the IRSA role trusts."
  type = object({
    namespace = string
    name      = string
  })
  default = {
    namespace = "cni-cloud"
    name      = "cni-cloud-controller"
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
