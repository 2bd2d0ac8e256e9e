output "vnet_id" {
  description = "VNet id."
  value       = azurerm_virtual_network.this.id
}

output "vnet_cidr" {
  description = "VNet address space (cni-cloud's CNI_CLOUD_VPC_CIDRS)."
  value       = var.vnet_cidr
}

output "subnet_id" {
  description = "Node subnet id."
  value       = azurerm_subnet.nodes.id
}

output "route_table_id" {
  description = "The route table cni-cloud manages (CNI_CLOUD_ROUTE_TABLES)."
  value       = azurerm_route_table.nodes.id
}
