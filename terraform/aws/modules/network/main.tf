# VPC for a cni-cloud test cluster: per zone a private node subnet whose route table carries
# the cluster tag (cni-cloud writes pod routes into exactly those tables), and a public
# subnet holding the NAT gateway that gives the nodes egress.

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  cluster_tag = { "kubernetes.io/cluster/${var.cluster_name}" = "owned" }
  tags        = merge(var.tags, local.cluster_tag)
  zones       = { for i, az in var.availability_zones : az => i }
  nat_zones   = var.single_nat_gateway ? { (var.availability_zones[0]) = 0 } : local.zones
}

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = merge(local.tags, { Name = var.cluster_name })
}

# Deny everything on the default security group; nodes use their own.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(local.tags, { Name = "${var.cluster_name}-default-deny" })
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(local.tags, { Name = var.cluster_name })
}

# /20 node subnets from the bottom of the VPC, /24 public (NAT) subnets from the top.
resource "aws_subnet" "private" {
  for_each          = local.zones
  vpc_id            = aws_vpc.this.id
  availability_zone = each.key
  cidr_block        = cidrsubnet(var.vpc_cidr, 4, each.value)
  tags              = merge(local.tags, { Name = "${var.cluster_name}-nodes-${each.key}" })
}

resource "aws_subnet" "public" {
  for_each          = local.zones
  vpc_id            = aws_vpc.this.id
  availability_zone = each.key
  cidr_block        = cidrsubnet(var.vpc_cidr, 8, 255 - each.value)
  tags              = merge(var.tags, { Name = "${var.cluster_name}-public-${each.key}" })
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id
  # Not tagged with the cluster: nodes are not in the public subnets, so cni-cloud leaves it alone.
  tags = merge(var.tags, { Name = "${var.cluster_name}-public" })
}

resource "aws_route" "public_default" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  for_each       = aws_subnet.public
  subnet_id      = each.value.id
  route_table_id = aws_route_table.public.id
}

resource "aws_eip" "nat" {
  for_each = local.nat_zones
  domain   = "vpc"
  tags     = merge(var.tags, { Name = "${var.cluster_name}-nat-${each.key}" })
}

resource "aws_nat_gateway" "this" {
  for_each      = local.nat_zones
  allocation_id = aws_eip.nat[each.key].id
  subnet_id     = aws_subnet.public[each.key].id
  tags          = merge(var.tags, { Name = "${var.cluster_name}-${each.key}" })
  depends_on    = [aws_internet_gateway.this]
}

# One route table per zone, tagged kubernetes.io/cluster/<name> = owned: the tables cni-cloud
# manages. Terraform owns only the default route; the pod routes are cni-cloud's, so
# inline routes (which would make Terraform delete them) are not used.
resource "aws_route_table" "private" {
  for_each = local.zones
  vpc_id   = aws_vpc.this.id
  tags     = merge(local.tags, { Name = "${var.cluster_name}-nodes-${each.key}" })
}

resource "aws_route" "private_default" {
  for_each               = local.zones
  route_table_id         = aws_route_table.private[each.key].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[var.single_nat_gateway ? var.availability_zones[0] : each.key].id
}

resource "aws_route_table_association" "private" {
  for_each       = local.zones
  subnet_id      = aws_subnet.private[each.key].id
  route_table_id = aws_route_table.private[each.key].id
}

# Node security group. Pods keep their addresses inside the VPC, so a self-reference (which
# matches the nodes' own addresses) is not enough: pod CIDRs are admitted explicitly.
resource "aws_security_group" "nodes" {
  #checkov:skip=CKV2_AWS_5:attached to the instances by the cluster module (output node_security_group_id); checkov cannot follow it across modules
  name_prefix = "${var.cluster_name}-nodes-"
  description = "cni-cloud test cluster nodes"
  vpc_id      = aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${var.cluster_name}-nodes" })
  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "nodes_self" {
  security_group_id            = aws_security_group.nodes.id
  description                  = "Node to node: kubelet, API server, etcd-free control plane traffic"
  referenced_security_group_id = aws_security_group.nodes.id
  ip_protocol                  = "-1"
}

resource "aws_vpc_security_group_ingress_rule" "pods" {
  for_each          = toset(var.cluster_cidrs)
  security_group_id = aws_security_group.nodes.id
  description       = "Pod to pod across nodes (routed, not encapsulated)"
  cidr_ipv4         = can(cidrnetmask(each.value)) ? each.value : null
  cidr_ipv6         = can(cidrnetmask(each.value)) ? null : each.value
  ip_protocol       = "-1"
}

resource "aws_vpc_security_group_egress_rule" "nodes_https" {
  security_group_id = aws_security_group.nodes.id
  description       = "Packages, images and the EC2 API over HTTPS"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "nodes_http" {
  security_group_id = aws_security_group.nodes.id
  description       = "Ubuntu package mirrors (apt verifies signatures)"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
}

resource "aws_vpc_security_group_egress_rule" "nodes_vpc" {
  security_group_id = aws_security_group.nodes.id
  description       = "Anything inside the VPC (nodes, DNS resolver, endpoints)"
  cidr_ipv4         = var.vpc_cidr
  ip_protocol       = "-1"
}

resource "aws_vpc_security_group_egress_rule" "nodes_pods" {
  for_each          = toset(var.cluster_cidrs)
  security_group_id = aws_security_group.nodes.id
  description       = "Pod traffic to pods on other nodes"
  cidr_ipv4         = can(cidrnetmask(each.value)) ? each.value : null
  cidr_ipv6         = can(cidrnetmask(each.value)) ? null : each.value
  ip_protocol       = "-1"
}

# Flow logs show whether pod traffic is routed or dropped: the first thing to check when a
# route is missing.
resource "aws_kms_key" "flow_logs" {
  description         = "${var.cluster_name} VPC flow logs"
  enable_key_rotation = true
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdmin"
        Effect    = "Allow"
        Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogs"
        Effect    = "Allow"
        Principal = { Service = "logs.${data.aws_region.current.name}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:log-group:/cni-cloud/${var.cluster_name}/*"
          }
        }
      },
    ]
  })
  tags = var.tags
}

resource "aws_cloudwatch_log_group" "flow_logs" {
  name              = "/cni-cloud/${var.cluster_name}/vpc-flow-logs"
  retention_in_days = var.flow_log_retention_days
  kms_key_id        = aws_kms_key.flow_logs.arn
  tags              = var.tags
}

resource "aws_iam_role" "flow_logs" {
  name_prefix = "${var.cluster_name}-flow-logs-"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "vpc-flow-logs.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "flow_logs" {
  name = "write-flow-logs"
  role = aws_iam_role.flow_logs.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
      Resource = "${aws_cloudwatch_log_group.flow_logs.arn}:*"
    }]
  })
}

resource "aws_flow_log" "this" {
  vpc_id          = aws_vpc.this.id
  traffic_type    = "ALL"
  log_destination = aws_cloudwatch_log_group.flow_logs.arn
  iam_role_arn    = aws_iam_role.flow_logs.arn
  tags            = var.tags
}
