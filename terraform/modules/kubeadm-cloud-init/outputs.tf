output "cloud_config" {
  description = "The rendered #cloud-config document."
  value       = local.cloud_config
  sensitive   = true
  precondition {
    # fileset() of a directory that does not exist is empty, not an error: a deploy_dir
    # that is wrong (or a copy of this module away from its checkout) would ship nothing.
    condition     = !local.control_plane || contains(local.deploy_files, "overlays/${var.cloud}/kustomization.yaml") && contains(local.deploy_files, "base/kustomization.yaml")
    error_message = "deploy_dir holds no base/kustomization.yaml and overlays/<cloud>/kustomization.yaml: set deploy_dir to the repository's deploy/ directory."
  }
}

output "cloud_config_base64gzip" {
  description = "The cloud-config gzipped and base64-encoded (cloud-init detects gzip): for aws_instance.user_data_base64 and azurerm custom_data, which keeps it under EC2's 16 KiB user-data limit."
  value       = base64gzip(local.cloud_config)
  sensitive   = true
}

output "cluster_kustomization" {
  description = "The kustomization the control plane applies on top of deploy/overlays/<cloud> (this cluster's values)."
  value       = local.cluster_kustomization
}
