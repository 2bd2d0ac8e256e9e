output "vnet_id" {
  description = "VNet id."
  value       = azurerm_virtual_network.this.id
}

output "vnet_cidr" {
  description = "VNet address space (cni-cloud's CNI_CLOUD_VPC_CIDRS)."
  value       = var.vnet_cidr
}

output "subnet_id" {
  description = "Node subnet id, available once the subnet has egress (NAT gateway and its public IP associated; the subnet has no default outbound access), its route table and its NSG: NICs and VMs created in it can install packages from their first boot."
  value       = azurerm_subnet.nodes.id
  depends_on = [
    azurerm_subnet_nat_gateway_association.nodes,
    azurerm_nat_gateway_public_ip_association.this,
    azurerm_subnet_route_table_association.nodes,
    azurerm_subnet_network_security_group_association.nodes,
  ]
}

output "route_table_id" {
  description = "The route table cni-cloud manages (CNI_CLOUD_ROUTE_TABLES)."
  value       = azurerm_route_table.nodes.id
}
