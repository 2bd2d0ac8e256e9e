# VNet for a cni-cloud test cluster: one node subnet, the route table cni-cloud writes pod
# routes into (associated with the subnet), NAT egress, and an NSG admitting pod traffic.

resource "azurerm_virtual_network" "this" {
  name                = "${var.cluster_name}-vnet"
  resource_group_name = var.resource_group_name
  location            = var.location
  address_space       = [var.vnet_cidr]
  tags                = var.tags
}

resource "azurerm_subnet" "nodes" {
  name                 = "nodes"
  resource_group_name  = var.resource_group_name
  virtual_network_name = azurerm_virtual_network.this.name
  address_prefixes     = [var.subnet_cidr]
  # Explicit egress through the NAT gateway (new VNets get no default outbound access).
  default_outbound_access_enabled = false
}

# The table cni-cloud manages. Terraform creates it empty and never manages its routes:
# inline `route` blocks would make every apply delete cni-cloud's routes.
resource "azurerm_route_table" "nodes" {
  name                          = "${var.cluster_name}-nodes"
  resource_group_name           = var.resource_group_name
  location                      = var.location
  bgp_route_propagation_enabled = true
  tags                          = var.tags

  lifecycle {
    ignore_changes = [route]
  }
}

resource "azurerm_subnet_route_table_association" "nodes" {
  subnet_id      = azurerm_subnet.nodes.id
  route_table_id = azurerm_route_table.nodes.id
}

resource "azurerm_public_ip" "nat" {
  name                = "${var.cluster_name}-nat"
  resource_group_name = var.resource_group_name
  location            = var.location
  allocation_method   = "Static"
  sku                 = "Standard"
  tags                = var.tags
}

resource "azurerm_nat_gateway" "this" {
  name                = "${var.cluster_name}-nat"
  resource_group_name = var.resource_group_name
  location            = var.location
  sku_name            = "Standard"
  tags                = var.tags
}

resource "azurerm_nat_gateway_public_ip_association" "this" {
  nat_gateway_id       = azurerm_nat_gateway.this.id
  public_ip_address_id = azurerm_public_ip.nat.id
}

resource "azurerm_subnet_nat_gateway_association" "nodes" {
  subnet_id      = azurerm_subnet.nodes.id
  nat_gateway_id = azurerm_nat_gateway.this.id
}

locals {
  # An NSG rule may not mix IPv4 and IPv6 prefixes: each rule is written once per family that
  # has prefixes (rule => family => prefixes; cidrnetmask() accepts IPv4 CIDRs only).
  rule_prefixes = {
    for rule, cidrs in { pods = var.cluster_cidrs, admin = var.admin_cidrs } : rule => {
      for family, prefixes in {
        ipv4 = [for c in cidrs : c if can(cidrnetmask(c))]
        ipv6 = [for c in cidrs : c if !can(cidrnetmask(c))]
      } : family => prefixes if length(prefixes) > 0
    }
  }
  family_offset = { ipv4 = 0, ipv6 = 1 }
}

resource "azurerm_network_security_group" "nodes" {
  name                = "${var.cluster_name}-nodes"
  resource_group_name = var.resource_group_name
  location            = var.location
  tags                = var.tags

  # Pods talk to pods on other nodes with their own addresses, which are outside the VNet's
  # address space (the default AllowVnetInBound does not cover them).
  dynamic "security_rule" {
    for_each = local.rule_prefixes.pods
    content {
      name                       = "pods-in-${security_rule.key}"
      priority                   = 100 + local.family_offset[security_rule.key]
      direction                  = "Inbound"
      access                     = "Allow"
      protocol                   = "*"
      source_port_range          = "*"
      destination_port_range     = "*"
      source_address_prefixes    = security_rule.value
      destination_address_prefix = "*"
    }
  }

  dynamic "security_rule" {
    for_each = local.rule_prefixes.admin
    content {
      name                       = "admin-ssh-in-${security_rule.key}"
      priority                   = 110 + local.family_offset[security_rule.key]
      direction                  = "Inbound"
      access                     = "Allow"
      protocol                   = "Tcp"
      source_port_range          = "*"
      destination_port_range     = "22"
      source_address_prefixes    = security_rule.value
      destination_address_prefix = "VirtualNetwork"
    }
  }
}

resource "azurerm_subnet_network_security_group_association" "nodes" {
  subnet_id                 = azurerm_subnet.nodes.id
  network_security_group_id = azurerm_network_security_group.nodes.id
}
