# The controller's AWS identity: exactly the EC2 actions the AWS provider calls
# (cni_cloud_providers::aws::OPERATIONS; providers/tests/least_privilege.rs holds the two
# equal). Writes are limited to resources carrying the cluster tag; EC2's Describe* calls
# support no resource-level permissions, so they get "*".

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  policy = templatefile("${path.module}/policy.json", {
    partition       = data.aws_partition.current.partition
    region          = data.aws_region.current.name
    account_id      = data.aws_caller_identity.current.account_id
    cluster_tag_key = "kubernetes.io/cluster/${var.cluster_name}"
  })
  oidc_issuer = var.oidc_provider_arn == null ? null : element(split(":oidc-provider/", var.oidc_provider_arn), 1)
}

resource "aws_iam_policy" "controller" {
  name_prefix = "${var.cluster_name}-cni-cloud-"
  description = "cni-cloud controller: pod routes in the ${var.cluster_name} route tables"
  policy      = local.policy
  tags        = var.tags
}

# Instance profile variant: the controller (hostNetwork) uses the node's IMDS credentials.
resource "aws_iam_role" "node" {
  name_prefix = "${var.cluster_name}-node-"
  description = "cni-cloud test cluster nodes"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "node" {
  role       = aws_iam_role.node.name
  policy_arn = aws_iam_policy.controller.arn
}

resource "aws_iam_instance_profile" "node" {
  name_prefix = "${var.cluster_name}-node-"
  role        = aws_iam_role.node.name
  tags        = var.tags
}

# IRSA variant: only the controller's ServiceAccount can assume it, through the cluster's
# OIDC issuer, so other pods on the node get nothing.
resource "aws_iam_role" "irsa" {
  count       = var.oidc_provider_arn == null ? 0 : 1
  name_prefix = "${var.cluster_name}-cni-cloud-"
  description = "cni-cloud controller (IRSA)"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Federated = var.oidc_provider_arn }
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {
        StringEquals = {
          "${local.oidc_issuer}:sub" = "system:serviceaccount:${var.service_account.namespace}:${var.service_account.name}"
          "${local.oidc_issuer}:aud" = "sts.amazonaws.com"
        }
      }
    }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "irsa" {
  count      = length(aws_iam_role.irsa)
  role       = aws_iam_role.irsa[0].name
  policy_arn = aws_iam_policy.controller.arn
}
