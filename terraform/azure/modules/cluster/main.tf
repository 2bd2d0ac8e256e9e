# One control plane and N worker VMs. Their NICs forward IP (pod traffic carries pod
# addresses), and every VM carries the controller's managed identity: the controller
# (hostNetwork) takes its token from IMDS.

resource "random_string" "token_id" {
  length  = 6
  special = false
  upper   = false
}

resource "random_password" "token_secret" {
  length  = 16
  special = false
  upper   = false
}

locals {
  nodes = merge(
    { "control-plane" = "${var.cluster_name}-control-plane" },
    { for i in range(var.worker_count) : "worker-${i}" => "${var.cluster_name}-worker-${i}" },
  )
  join_token   = "${random_string.token_id.result}.${random_password.token_secret.result}"
  vm_id_prefix = "/subscriptions/${var.subscription_id}/resourceGroups/${var.resource_group_name}/providers/Microsoft.Compute/virtualMachines"
  # The providerID is known before the VM exists (its name is ours to choose).
  provider_id_script = { for k, name in local.nodes : k => "#!/bin/sh\necho 'azure://${local.vm_id_prefix}/${name}'\n" }
  cluster_settings = {
    cloud              = "azure"
    kubernetes_version = var.kubernetes_version
    cluster_name       = var.cluster_name
    cluster_cidrs      = var.cluster_cidrs
    service_cidr       = var.service_cidr
    vpc_cidrs          = [var.vnet_cidr]
  }
}

module "control_plane_init" {
  source = "../../../modules/kubeadm-cloud-init"

  role               = "control-plane"
  cloud              = local.cluster_settings.cloud
  kubernetes_version = local.cluster_settings.kubernetes_version
  join_token         = local.join_token
  cluster_name       = local.cluster_settings.cluster_name
  cluster_cidrs      = local.cluster_settings.cluster_cidrs
  service_cidr       = local.cluster_settings.service_cidr
  vpc_cidrs          = local.cluster_settings.vpc_cidrs
  provider_id_script = local.provider_id_script["control-plane"]
  controller_settings = {
    CNI_CLOUD_ROUTE_TABLES = join(",", var.route_table_ids)
    # Picks the user-assigned identity when IMDS is asked for a token.
    AZURE_CLIENT_ID = var.identity_client_id
  }
  # No workload identity webhook here: the client id on the ServiceAccount documents which
  # identity the controller uses; the token comes from IMDS.
  controller_service_account_annotations = { "azure.workload.identity/client-id" = var.identity_client_id }
  cni_cloud_image                        = var.cni_cloud_image
}

module "worker_init" {
  source   = "../../../modules/kubeadm-cloud-init"
  for_each = { for k, v in local.nodes : k => v if k != "control-plane" }

  role                  = "worker"
  control_plane_address = azurerm_network_interface.node["control-plane"].private_ip_address
  cloud                 = local.cluster_settings.cloud
  kubernetes_version    = local.cluster_settings.kubernetes_version
  join_token            = local.join_token
  cluster_name          = local.cluster_settings.cluster_name
  cluster_cidrs         = local.cluster_settings.cluster_cidrs
  service_cidr          = local.cluster_settings.service_cidr
  vpc_cidrs             = local.cluster_settings.vpc_cidrs
  provider_id_script    = local.provider_id_script[each.key]
}

resource "azurerm_public_ip" "control_plane" {
  count               = var.control_plane_public_ip ? 1 : 0
  name                = "${var.cluster_name}-control-plane"
  resource_group_name = var.resource_group_name
  location            = var.location
  allocation_method   = "Static"
  sku                 = "Standard"
  tags                = var.tags
}

resource "azurerm_network_interface" "node" {
  #checkov:skip=CKV_AZURE_119:only the control plane gets a public IP (control_plane_public_ip), for SSH from admin_cidrs to fetch the kubeconfig; the NSG admits nothing else
  for_each            = local.nodes
  name                = each.value
  resource_group_name = var.resource_group_name
  location            = var.location
  # Pod traffic leaves and arrives with pod addresses: Azure must forward it.
  ip_forwarding_enabled = true
  tags                  = var.tags

  ip_configuration {
    name                          = "primary"
    subnet_id                     = var.subnet_id
    private_ip_address_allocation = "Dynamic"
    public_ip_address_id          = each.key == "control-plane" ? one(azurerm_public_ip.control_plane[*].id) : null
  }
}

resource "azurerm_linux_virtual_machine" "node" {
  for_each                        = local.nodes
  name                            = each.value
  computer_name                   = each.value
  resource_group_name             = var.resource_group_name
  location                        = var.location
  size                            = var.vm_size
  admin_username                  = var.admin_username
  disable_password_authentication = true
  network_interface_ids           = [azurerm_network_interface.node[each.key].id]
  allow_extension_operations      = false
  encryption_at_host_enabled      = var.encryption_at_host
  custom_data                     = each.key == "control-plane" ? module.control_plane_init.cloud_config_base64gzip : module.worker_init[each.key].cloud_config_base64gzip
  tags                            = var.tags

  admin_ssh_key {
    username   = var.admin_username
    public_key = var.ssh_public_key
  }

  identity {
    type         = "UserAssigned"
    identity_ids = [var.identity_id]
  }

  os_disk {
    caching              = "ReadWrite"
    storage_account_type = "Premium_LRS"
    disk_size_gb         = 30
  }

  source_image_reference {
    publisher = "Canonical"
    offer     = "ubuntu-24_04-lts"
    sku       = "server"
    version   = "latest"
  }

  lifecycle {
    # A new image or cloud-init must not replace a running node behind the user's back.
    ignore_changes = [custom_data, source_image_reference]
  }
}
