# Renders the cloud-init of one test-environment node: kubeadm (node CIDR allocation on,
# no CNI), and on the control plane cni-cloud from this checkout's deploy/ with the
# cluster's values merged on top of deploy/overlays/<cloud>.

locals {
  deploy_dir       = coalesce(var.deploy_dir, "${path.module}/../../../deploy")
  kubernetes_minor = "v${join(".", slice(split(".", var.kubernetes_version), 0, 2))}"
  control_plane    = var.role == "control-plane"

  # deploy/base and deploy/overlays/<cloud> as they are in this checkout, so the environment
  # tests the manifests under review rather than a published release. One fileset() per
  # directory: Terraform's glob rejects a "/" inside "{…}" alternatives.
  deploy_files = local.control_plane ? sort(concat(
    tolist(fileset(local.deploy_dir, "base/*.yaml")),
    tolist(fileset(local.deploy_dir, "overlays/${var.cloud}/*.yaml")),
  )) : []

  kubelet_args = [{ name = "provider-id", value = "@PROVIDER_ID@" }]

  kubeadm_init = join("---\n", [
    yamlencode({
      apiVersion = "kubeadm.k8s.io/v1beta4"
      kind       = "InitConfiguration"
      bootstrapTokens = [{
        token  = var.join_token
        ttl    = "24h0m0s"
        usages = ["signing", "authentication"]
        groups = ["system:bootstrappers:kubeadm:default-node-token"]
      }]
      nodeRegistration = { kubeletExtraArgs = local.kubelet_args }
    }),
    yamlencode({
      apiVersion        = "kubeadm.k8s.io/v1beta4"
      kind              = "ClusterConfiguration"
      kubernetesVersion = "v${var.kubernetes_version}"
      # podSubnet makes kubeadm run kube-controller-manager with --allocate-node-cidrs and
      # --cluster-cidr: every Node gets spec.podCIDRs, which cni-cloud routes.
      networking = {
        podSubnet     = join(",", var.cluster_cidrs)
        serviceSubnet = var.service_cidr
      }
      # The kubeconfig fetch command tunnels the API server to localhost.
      apiServer = { certSANs = ["127.0.0.1", "localhost"] }
      controllerManager = {
        # No cloud controller routes: cni-cloud owns the route tables.
        extraArgs = [{ name = "configure-cloud-routes", value = "false" }]
      }
    }),
  ])

  kubeadm_join = yamlencode({
    apiVersion = "kubeadm.k8s.io/v1beta4"
    kind       = "JoinConfiguration"
    discovery = {
      bootstrapToken = {
        apiServerEndpoint = "${coalesce(var.control_plane_address, "unset")}:6443"
        token             = var.join_token
        # A test environment inside one private network: the token authenticates the node,
        # and skipping CA pinning avoids shipping the cluster CA's key in user data.
        unsafeSkipCAVerification = true
      }
    }
    nodeRegistration = { kubeletExtraArgs = local.kubelet_args }
  })

  cluster_kustomization = templatefile("${path.module}/templates/cluster-kustomization.yaml.tftpl", {
    cloud            = var.cloud
    cluster_literals = jsonencode(["CNI_CLOUD_CLUSTER_CIDRS=${join(",", var.cluster_cidrs)}"])
    controller_literals = jsonencode(concat(
      ["CNI_CLOUD_CLUSTER_NAME=${var.cluster_name}"],
      [for k in sort(keys(var.controller_settings)) : "${k}=${var.controller_settings[k]}"],
    ))
    node_literals = jsonencode(["CNI_CLOUD_VPC_CIDRS=${join(",", var.vpc_cidrs)}"])
    service_account_patch = jsonencode(jsonencode([{
      op    = "add"
      path  = "/metadata/annotations"
      value = var.controller_service_account_annotations
    }]))
    images = jsonencode(var.cni_cloud_image == null ? [] : [{
      name    = "ghcr.io/cni-cloud/cni-cloud"
      newName = var.cni_cloud_image.repository
      newTag  = var.cni_cloud_image.tag
    }])
  })

  write_files = concat(
    [for f in local.deploy_files : {
      path        = "/opt/cni-cloud/deploy/${f}"
      permissions = "0644"
      encoding    = "b64"
      content     = filebase64("${local.deploy_dir}/${f}")
    }],
    local.control_plane ? [{
      path        = "/opt/cni-cloud/deploy/cluster/kustomization.yaml"
      permissions = "0644"
      content     = local.cluster_kustomization
    }] : [],
    [
      {
        path        = "/opt/cni-cloud/kubeadm.yaml.in"
        permissions = "0600"
        content     = local.control_plane ? local.kubeadm_init : local.kubeadm_join
      },
      {
        path        = "/opt/cni-cloud/provider-id.sh"
        permissions = "0755"
        content     = var.provider_id_script
      },
      {
        path        = "/opt/cni-cloud/bootstrap.sh"
        permissions = "0700"
        content = templatefile("${path.module}/templates/bootstrap.sh.tftpl", {
          role               = var.role
          kubernetes_version = var.kubernetes_version
          kubernetes_minor   = local.kubernetes_minor
        })
      },
    ],
  )

  cloud_config = "#cloud-config\n${yamlencode({
    write_files = local.write_files
    runcmd      = [["/opt/cni-cloud/bootstrap.sh"]]
  })}"
}
