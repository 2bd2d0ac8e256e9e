output "kubeconfig_command" {
  description = "How to fetch the kubeconfig (and tunnel the API server to localhost)."
  value       = module.cluster.kubeconfig_command
}

output "route_table_ids" {
  description = "The route tables cni-cloud manages (CNI_CLOUD_ROUTE_TABLES)."
  value       = [module.network.route_table_id]
}

output "cluster_cidrs" {
  description = "Pod CIDRs (CNI_CLOUD_CLUSTER_CIDRS)."
  value       = var.cluster_cidrs
}

output "vnet_cidr" {
  description = "VNet address space (CNI_CLOUD_VPC_CIDRS)."
  value       = module.network.vnet_cidr
}

output "identity_client_id" {
  description = "Client id of the controller's managed identity."
  value       = module.identity.client_id
}

output "role_actions" {
  description = "Every action the controller's custom roles grant."
  value       = module.identity.actions
}
