output "kubeconfig_command" {
  description = "How to fetch the kubeconfig (and tunnel the API server to localhost)."
  value       = module.cluster.kubeconfig_command
}

output "route_table_ids" {
  description = "The cluster-tagged route tables cni-cloud manages, per zone."
  value       = module.network.route_table_ids
}

output "cluster_cidrs" {
  description = "Pod CIDRs (CNI_CLOUD_CLUSTER_CIDRS)."
  value       = var.cluster_cidrs
}

output "vpc_cidr" {
  description = "VPC CIDR (CNI_CLOUD_VPC_CIDRS)."
  value       = module.network.vpc_cidr
}

output "controller_policy" {
  description = "The controller's IAM policy document."
  value       = module.iam.policy_json
}

output "irsa_role_arn" {
  description = "IRSA role ARN (null without oidc_provider_arn)."
  value       = module.iam.irsa_role_arn
}
