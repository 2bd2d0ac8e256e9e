# One control plane and N workers. Every instance, volume and primary network interface
# carries the cluster tag: cni-cloud recognises its instances by it, and the IAM policy
# allows ModifyNetworkInterfaceAttribute only on tagged interfaces.

data "aws_region" "current" {}

data "aws_ami" "ubuntu" {
  count       = var.ami_id == null ? 1 : 0
  most_recent = true
  owners      = ["099720109477"] # Canonical
  filter {
    name   = "name"
    values = ["ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"]
  }
  filter {
    name   = "virtualization-type"
    values = ["hvm"]
  }
}

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
  cluster_tag = { "kubernetes.io/cluster/${var.cluster_name}" = "owned" }
  tags        = merge(var.tags, local.cluster_tag)
  zones       = sort(keys(var.subnet_ids))
  join_token  = "${random_string.token_id.result}.${random_password.token_secret.result}"
  # providerID aws:///<zone>/<instance-id>, from IMDSv2 at boot (the id is unknown before launch).
  provider_id_script = <<-EOT
    #!/bin/sh
    set -eu
    token="$(curl -sf -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token)"
    md() { curl -sf -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"; }
    echo "aws:///$(md placement/availability-zone)/$(md instance-id)"
  EOT
  common = {
    cloud                                  = "aws"
    kubernetes_version                     = var.kubernetes_version
    join_token                             = local.join_token
    cluster_name                           = var.cluster_name
    cluster_cidrs                          = var.cluster_cidrs
    service_cidr                           = var.service_cidr
    vpc_cidrs                              = [var.vpc_cidr]
    provider_id_script                     = local.provider_id_script
    controller_settings                    = { AWS_REGION = data.aws_region.current.name }
    controller_service_account_annotations = var.irsa_role_arn == null ? {} : { "eks.amazonaws.com/role-arn" = var.irsa_role_arn, "eks.amazonaws.com/sts-regional-endpoints" = "true" }
    cni_cloud_image                        = var.cni_cloud_image
  }
}

module "control_plane_init" {
  source = "../../../modules/kubeadm-cloud-init"

  role                                   = "control-plane"
  cloud                                  = local.common.cloud
  kubernetes_version                     = local.common.kubernetes_version
  join_token                             = local.common.join_token
  cluster_name                           = local.common.cluster_name
  cluster_cidrs                          = local.common.cluster_cidrs
  service_cidr                           = local.common.service_cidr
  vpc_cidrs                              = local.common.vpc_cidrs
  provider_id_script                     = local.common.provider_id_script
  controller_settings                    = local.common.controller_settings
  controller_service_account_annotations = local.common.controller_service_account_annotations
  cni_cloud_image                        = local.common.cni_cloud_image
}

module "worker_init" {
  source = "../../../modules/kubeadm-cloud-init"

  role                  = "worker"
  control_plane_address = aws_instance.control_plane.private_ip
  cloud                 = local.common.cloud
  kubernetes_version    = local.common.kubernetes_version
  join_token            = local.common.join_token
  cluster_name          = local.common.cluster_name
  cluster_cidrs         = local.common.cluster_cidrs
  service_cidr          = local.common.service_cidr
  vpc_cidrs             = local.common.vpc_cidrs
  provider_id_script    = local.common.provider_id_script
}

resource "aws_key_pair" "admin" {
  key_name_prefix = "${var.cluster_name}-"
  public_key      = var.ssh_public_key
  tags            = var.tags
}

resource "aws_launch_template" "node" {
  name_prefix   = "${var.cluster_name}-node-"
  image_id      = var.ami_id == null ? data.aws_ami.ubuntu[0].id : var.ami_id
  instance_type = var.instance_type
  key_name      = aws_key_pair.admin.key_name
  ebs_optimized = true

  # IMDSv2 only. Hop limit 1 suffices: the controller runs with hostNetwork.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  monitoring {
    enabled = true
  }

  dynamic "tag_specifications" {
    for_each = ["instance", "volume", "network-interface"]
    content {
      resource_type = tag_specifications.value
      tags          = local.tags
    }
  }

  tags = var.tags
}

resource "aws_instance" "control_plane" {
  subnet_id              = var.subnet_ids[local.zones[0]]
  vpc_security_group_ids = [var.security_group_id]
  # Pod traffic leaves and enters with pod addresses: EC2 must not drop it.
  source_dest_check    = false
  iam_instance_profile = var.instance_profile_name
  user_data_base64     = module.control_plane_init.cloud_config_base64gzip
  monitoring           = true
  ebs_optimized        = true

  launch_template {
    id      = aws_launch_template.node.id
    version = aws_launch_template.node.latest_version
  }

  metadata_options {
    http_tokens = "required"
  }

  # The root volume is defined here only: a root_block_device next to a launch template
  # mapping replaces that mapping (size falling back to the AMI's 8 GiB), and a mapping
  # needs the AMI's root device name.
  root_block_device {
    volume_size           = var.root_volume_size
    volume_type           = "gp3"
    encrypted             = true
    delete_on_termination = true
  }

  tags = merge(local.tags, { Name = "${var.cluster_name}-control-plane" })

  lifecycle {
    # A new AMI or user data must not replace a running node behind the user's back.
    ignore_changes = [user_data_base64, launch_template]
  }
}

resource "aws_instance" "worker" {
  count                  = var.worker_count
  subnet_id              = var.subnet_ids[local.zones[count.index % length(local.zones)]]
  vpc_security_group_ids = [var.security_group_id]
  source_dest_check      = false
  iam_instance_profile   = var.instance_profile_name
  user_data_base64       = module.worker_init.cloud_config_base64gzip
  monitoring             = true
  ebs_optimized          = true

  launch_template {
    id      = aws_launch_template.node.id
    version = aws_launch_template.node.latest_version
  }

  metadata_options {
    http_tokens = "required"
  }

  root_block_device {
    volume_size           = var.root_volume_size
    volume_type           = "gp3"
    encrypted             = true
    delete_on_termination = true
  }

  tags = merge(local.tags, { Name = "${var.cluster_name}-worker-${count.index}" })

  lifecycle {
    ignore_changes = [user_data_base64, launch_template]
  }
}

# SSH to the private control plane without a public address or bastion.
resource "aws_security_group" "eice" {
  name_prefix = "${var.cluster_name}-eice-"
  description = "EC2 Instance Connect Endpoint of the cni-cloud test cluster"
  vpc_id      = data.aws_subnet.first.vpc_id
  tags        = var.tags
  lifecycle {
    create_before_destroy = true
  }
}

data "aws_subnet" "first" {
  id = var.subnet_ids[local.zones[0]]
}

resource "aws_vpc_security_group_egress_rule" "eice_ssh" {
  security_group_id            = aws_security_group.eice.id
  description                  = "SSH to the nodes"
  referenced_security_group_id = var.security_group_id
  ip_protocol                  = "tcp"
  from_port                    = 22
  to_port                      = 22
}

resource "aws_vpc_security_group_ingress_rule" "nodes_ssh_from_eice" {
  #checkov:skip=CKV_AWS_24:false positive: the source is the endpoint's security group (referenced_security_group_id), not 0.0.0.0/0
  security_group_id            = var.security_group_id
  description                  = "SSH from the EC2 Instance Connect Endpoint"
  referenced_security_group_id = aws_security_group.eice.id
  ip_protocol                  = "tcp"
  from_port                    = 22
  to_port                      = 22
}

resource "aws_ec2_instance_connect_endpoint" "this" {
  subnet_id          = var.subnet_ids[local.zones[0]]
  security_group_ids = [aws_security_group.eice.id]
  tags               = var.tags
}
