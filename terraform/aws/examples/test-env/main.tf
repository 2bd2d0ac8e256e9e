# A cni-cloud test cluster on AWS: VPC (one node subnet and cluster-tagged route table per
# zone), the controller's least-privilege identity, and a kubeadm cluster that installs
# cni-cloud from this checkout's deploy/overlays/aws.

provider "aws" {
  region = var.region
  default_tags {
    tags = {
      "app.kubernetes.io/part-of" = "cni-cloud"
      "cni-cloud/environment"     = "test"
    }
  }
}

locals {
  # Explicit zones rather than a data source, whose result grows when AWS adds a zone
  # (and with it the subnets and route tables).
  zones = coalesce(var.availability_zones, ["${var.region}a", "${var.region}b"])
}

module "network" {
  source = "../../modules/network"

  cluster_name       = var.cluster_name
  vpc_cidr           = var.vpc_cidr
  availability_zones = local.zones
  cluster_cidrs      = var.cluster_cidrs
}

module "iam" {
  source = "../../modules/iam"

  cluster_name      = var.cluster_name
  oidc_provider_arn = var.oidc_provider_arn
}

module "cluster" {
  source = "../../modules/cluster"

  cluster_name          = var.cluster_name
  subnet_ids            = module.network.private_subnet_ids
  security_group_id     = module.network.node_security_group_id
  instance_profile_name = module.iam.instance_profile_name
  worker_count          = var.worker_count
  ssh_public_key        = var.ssh_public_key
  cluster_cidrs         = var.cluster_cidrs
  vpc_cidr              = module.network.vpc_cidr
  irsa_role_arn         = module.iam.irsa_role_arn
  cni_cloud_image       = var.cni_cloud_image
}
