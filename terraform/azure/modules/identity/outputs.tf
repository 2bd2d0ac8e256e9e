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

output "role_definition_ids" {
  description = "Resource id of each custom role (resources, linked, operation-status)."
  value       = { for role, definition in azurerm_role_definition.controller : role => definition.role_definition_resource_id }
}

output "actions" {
  description = "Every action the custom roles grant (sorted)."
  value       = local.actions
}
