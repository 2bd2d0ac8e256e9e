# A cni-cloud test cluster on Azure: resource group, VNet with the node subnet and its route
# table, the controller's managed identity with a custom least-privilege role, and a kubeadm
# cluster that installs cni-cloud from this checkout's deploy/overlays/azure.

provider "azurerm" {
  features {}
  subscription_id = var.subscription_id
}

locals {
  tags = {
    "app.kubernetes.io/part-of" = "cni-cloud"
    "cni-cloud-environment"     = "test"
  }
}

resource "azurerm_resource_group" "this" {
  name     = "${var.cluster_name}-rg"
  location = var.location
  tags     = local.tags
}

module "network" {
  source = "../../modules/network"

  cluster_name        = var.cluster_name
  resource_group_name = azurerm_resource_group.this.name
  location            = var.location
  vnet_cidr           = var.vnet_cidr
  subnet_cidr         = var.subnet_cidr
  cluster_cidrs       = var.cluster_cidrs
  admin_cidrs         = var.admin_cidrs
  tags                = local.tags
}

module "cluster" {
  source = "../../modules/cluster"

  cluster_name        = var.cluster_name
  resource_group_name = azurerm_resource_group.this.name
  location            = var.location
  subscription_id     = var.subscription_id
  subnet_id           = module.network.subnet_id
  route_table_ids     = [module.network.route_table_id]
  identity_id         = module.identity.identity_id
  identity_client_id  = module.identity.client_id
  worker_count        = var.worker_count
  ssh_public_key      = var.ssh_public_key
  cluster_cidrs       = var.cluster_cidrs
  vnet_cidr           = module.network.vnet_cidr
  encryption_at_host  = var.encryption_at_host
  cni_cloud_image     = var.cni_cloud_image
  tags                = local.tags
}

module "identity" {
  source = "../../modules/identity"

  cluster_name        = var.cluster_name
  resource_group_id   = azurerm_resource_group.this.id
  resource_group_name = azurerm_resource_group.this.name
  location            = var.location
  # Exactly the resources the controller touches: the route table, and each node's NIC
  # (IP forwarding) and VM (providerID -> NIC lookup).
  role_scopes = merge(
    { "route-table" = module.network.route_table_id },
    { for k, id in module.cluster.nic_ids : "nic-${k}" => id },
    { for k, id in module.cluster.vm_ids : "vm-${k}" => id },
  )
  # What those NICs reference, which ARM checks (join) when the controller writes a NIC.
  linked_scopes = merge(
    { "subnet" = module.network.subnet_id },
    { for k, id in module.cluster.public_ip_ids : "public-ip-${k}" => id },
  )
  tags = local.tags
}
