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
  # Inbound rules from CIDR lists. Pods talk to pods on other nodes with their own addresses,
  # which are outside the VNet's address space (the default AllowVnetInBound does not cover
  # them); SSH only from admin_cidrs.
  inbound = {
    pods      = { priority = 100, protocol = "*", port = "*", destination = "*", cidrs = var.cluster_cidrs }
    admin-ssh = { priority = 110, protocol = "Tcp", port = "22", destination = "VirtualNetwork", cidrs = var.admin_cidrs }
  }
  # An NSG rule may not mix IPv4 and IPv6 prefixes: each is written once per family that has
  # prefixes ("<rule>-in-ipv4", "<rule>-in-ipv6" one priority apart; cidrnetmask() accepts
  # IPv4 CIDRs only).
  nsg_rules = merge([
    for rule, spec in local.inbound : {
      for family, prefixes in {
        ipv4 = [for c in spec.cidrs : c if can(cidrnetmask(c))]
        ipv6 = [for c in spec.cidrs : c if !can(cidrnetmask(c))]
      } : "${rule}-in-${family}" => merge(spec, { priority = spec.priority + (family == "ipv6" ? 1 : 0), prefixes = prefixes })
      if length(prefixes) > 0
    }
  ]...)
}

resource "azurerm_network_security_group" "nodes" {
  name                = "${var.cluster_name}-nodes"
  resource_group_name = var.resource_group_name
  location            = var.location
  tags                = var.tags

  dynamic "security_rule" {
    for_each = local.nsg_rules
    content {
      name                       = security_rule.key
      priority                   = security_rule.value.priority
      direction                  = "Inbound"
      access                     = "Allow"
      protocol                   = security_rule.value.protocol
      source_port_range          = "*"
      destination_port_range     = security_rule.value.port
      source_address_prefixes    = security_rule.value.prefixes
      destination_address_prefix = security_rule.value.destination
    }
  }
}

resource "azurerm_subnet_network_security_group_association" "nodes" {
  subnet_id                 = azurerm_subnet.nodes.id
  network_security_group_id = azurerm_network_security_group.nodes.id
}
