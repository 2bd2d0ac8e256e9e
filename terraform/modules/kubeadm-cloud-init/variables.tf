variable "cloud" {
  description = "Which deploy/overlays/<cloud> the control plane applies: aws or azure."
  type        = string
  validation {
    condition     = contains(["aws", "azure"], var.cloud)
    error_message = "cloud must be aws or azure."
  }
}

variable "role" {
  description = "control-plane (kubeadm init, then applies cni-cloud) or worker (kubeadm join)."
  type        = string
  validation {
    condition     = contains(["control-plane", "worker"], var.role)
    error_message = "role must be control-plane or worker."
  }
}

variable "kubernetes_version" {
  description = "Kubernetes patch version installed from pkgs.k8s.io (kubeadm, kubelet, kubectl), e.g. 1.33.5; 1.31 or later, the first kubeadm to read the v1beta4 configuration (list-form extraArgs) this module writes."
  type        = string
  validation {
    condition     = can(regex("^1\\.(3[1-9]|[4-9][0-9]|[1-9][0-9]{2,})\\.[0-9]+$", var.kubernetes_version))
    error_message = "kubernetes_version must look like 1.33.5 and be 1.31 or later: the kubeadm configuration is kubeadm.k8s.io/v1beta4, which older kubeadm cannot read."
  }
}

variable "join_token" {
  description = "kubeadm bootstrap token ([a-z0-9]{6}.[a-z0-9]{16}) shared by the control plane and the workers."
  type        = string
  sensitive   = true
  validation {
    condition     = can(regex("^[a-z0-9]{6}\\.[a-z0-9]{16}$", var.join_token))
    error_message = "join_token must match [a-z0-9]{6}.[a-z0-9]{16}."
  }
}

variable "control_plane_address" {
  description = "Private IP of the control plane; workers join https://<address>:6443. Ignored for the control plane."
  type        = string
  default     = null
}

variable "cluster_name" {
  description = "Cluster name: cni-cloud's CNI_CLOUD_CLUSTER_NAME (AWS tag kubernetes.io/cluster/<name>, Azure route-name prefix)."
  type        = string
  validation {
    # IAM name_prefix allows 38 characters ("<name>-flow-logs-": 27); VM and host names become
    # Kubernetes node names; cni-cloud's Azure route names are "<name>--<cidr>".
    condition     = length(var.cluster_name) <= 27 && can(regex("^[a-z](-?[a-z0-9])*$", var.cluster_name))
    error_message = "cluster_name must be 1 to 27 lowercase letters, digits and single hyphens, starting with a letter and ending with a letter or digit."
  }
}

variable "cluster_cidrs" {
  description = "Pod CIDRs (kubeadm podSubnet, so kube-controller-manager allocates node CIDRs from them; one per IP family)."
  type        = list(string)
}

variable "service_cidr" {
  description = "Service CIDR (kubeadm serviceSubnet)."
  type        = string
  default     = "10.96.0.0/12"
}

variable "vpc_cidrs" {
  description = "VPC / VNet address space: cni-cloud's CNI_CLOUD_VPC_CIDRS (pod traffic there is not masqueraded)."
  type        = list(string)
}

variable "provider_id_script" {
  description = "POSIX shell script run on the node at boot that prints the node's Kubernetes providerID (aws:///<az>/<instance-id> or azure:///subscriptions/...)."
  type        = string
}

variable "controller_settings" {
  description = "Extra literals merged into the cni-cloud-controller ConfigMap (e.g. AWS_REGION, CNI_CLOUD_ROUTE_TABLES, AZURE_CLIENT_ID)."
  type        = map(string)
  default     = {}
}

variable "controller_service_account_annotations" {
  description = "Annotations that replace the overlay's example ones on the cni-cloud-controller ServiceAccount (IRSA role ARN, workload identity client id). Empty removes the examples."
  type        = map(string)
  default     = {}
}

variable "cni_cloud_image" {
  description = "Optional image override for cni-cloud (kustomize images): repository and tag, e.g. { repository = \"ghcr.io/me/cni-cloud\", tag = \"dev\" }."
  type = object({
    repository = string
    tag        = string
  })
  default = null
}

variable "deploy_dir" {
  description = "Path of the repository's deploy/ directory whose base and overlays/<cloud> the control plane applies. Defaults to the deploy/ of this checkout."
  type        = string
  default     = null
}
