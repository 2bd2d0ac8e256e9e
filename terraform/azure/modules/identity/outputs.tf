output "identity_id" {
  description = "Resource id of the managed identity (attach it to the VMs)."
  value       = azurerm_user_assigned_identity.controller.id
}

output "client_id" {
  description = "Client id of the managed identity (AZURE_CLIENT_ID picks it through IMDS)."
  value       = azurerm_user_assigned_identity.controller.client_id
}

output "principal_id" {
  description = "Principal (object) id of the managed identity."
  value       = azurerm_user_assigned_identity.controller.principal_id
}

output "role_definition_id" {
  description = "Resource id of the custom role."
  value       = azurerm_role_definition.controller.role_definition_resource_id
}

output "actions" {
  description = "The custom role's actions."
  value       = local.actions
}
