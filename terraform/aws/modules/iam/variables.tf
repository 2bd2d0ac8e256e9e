variable "cluster_name" {
  description = "Cluster name: writes are allowed only on route tables and network interfaces tagged kubernetes.io/cluster/<name> (any value)."
  type        = string
  validation {
    # IAM name_prefix allows 38 characters ("<name>-flow-logs-": 27); VM and host names become
    # Kubernetes node names; cni-cloud's Azure route names are "<name>--<cidr>".
    condition     = length(var.cluster_name) <= 27 && can(regex("^[a-z](-?[a-z0-9])*$", var.cluster_name))
    error_message = "cluster_name must be 1 to 27 lowercase letters, digits and single hyphens, starting with a letter and ending with a letter or digit."
  }
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
