# The controller's Azure identity: a user-assigned managed identity holding three custom roles
# (role-actions.json) with exactly the ARM operations the Azure provider calls, each assigned
# only where its actions apply, never on the subscription:
#
# - resources: route table, NIC and VM reads and writes, on the route tables, the nodes'
#   NICs and VMs (role_scopes);
# - linked: ARM checks `join/action` on what a NIC references whenever the NIC is written
#   (the provider writes a NIC to turn IP forwarding on): on the node subnet and the NICs'
#   public IPs (linked_scopes);
# - operation-status: Microsoft.Network/locations/operations/read, to follow the long-running
#   writes (Azure-AsyncOperation). That URL is under no resource; Microsoft's guide to
#   tracking asynchronous operations ("Permission for tracking async status",
#   https://learn.microsoft.com/azure/azure-resource-manager/management/async-operations)
#   says tracking needs the permission at resource-group level, so it is assigned on the
#   cluster's resource group. Not yet confirmed against a real subscription: if ARM still
#   refuses the poll, the provider follows the resource's provisioningState instead.

locals {
  roles = jsondecode(file("${path.module}/role-actions.json")).roles
  # role => { key => scope }
  scopes = {
    resources        = var.role_scopes
    linked           = var.linked_scopes
    operation-status = { "resource-group" = var.resource_group_id }
  }
  assignments = merge([
    for role, scopes in local.scopes : { for key, scope in scopes : "${role}/${key}" => { role = role, scope = scope } }
  ]...)
  actions = sort(flatten([for role in local.roles : role.actions]))
}

resource "azurerm_user_assigned_identity" "controller" {
  name                = "${var.cluster_name}-cni-cloud"
  resource_group_name = var.resource_group_name
  location            = var.location
  tags                = var.tags
}

resource "azurerm_role_definition" "controller" {
  for_each          = local.roles
  name              = "${var.cluster_name} cni-cloud ${each.key}"
  scope             = var.resource_group_id
  description       = each.value.description
  assignable_scopes = [var.resource_group_id]

  permissions {
    actions     = each.value.actions
    not_actions = []
  }
}

resource "azurerm_role_assignment" "controller" {
  for_each           = local.assignments
  scope              = each.value.scope
  role_definition_id = azurerm_role_definition.controller[each.value.role].role_definition_resource_id
  principal_id       = azurerm_user_assigned_identity.controller.principal_id
  principal_type     = "ServicePrincipal"
  description        = "cni-cloud controller: ${each.key}"
}
