# The controller's Azure identity: a user-assigned managed identity holding a custom role
# with exactly the ARM operations the Azure provider calls, assigned only on the resources
# it touches (route tables, node NICs and VMs), never on the resource group or subscription.
#
# Microsoft.Network/locations/operations/read lets the provider follow the long-running PUT
# it started (Azure-AsyncOperation). Its resource lives at subscription scope, where no
# assignment is made: ARM lets the caller that started an operation poll it.

locals {
  actions = jsondecode(file("${path.module}/role-actions.json")).actions
}

resource "azurerm_user_assigned_identity" "controller" {
  name                = "${var.cluster_name}-cni-cloud"
  resource_group_name = var.resource_group_name
  location            = var.location
  tags                = var.tags
}

resource "azurerm_role_definition" "controller" {
  name              = "${var.cluster_name} cni-cloud route controller"
  scope             = var.resource_group_id
  description       = "cni-cloud: pod routes in the cluster's route tables, IP forwarding on its NICs"
  assignable_scopes = [var.resource_group_id]

  permissions {
    actions     = local.actions
    not_actions = []
  }
}

resource "azurerm_role_assignment" "controller" {
  for_each           = var.role_scopes
  scope              = each.value
  role_definition_id = azurerm_role_definition.controller.role_definition_resource_id
  principal_id       = azurerm_user_assigned_identity.controller.principal_id
  principal_type     = "ServicePrincipal"
  description        = "cni-cloud controller: ${each.key}"
}
