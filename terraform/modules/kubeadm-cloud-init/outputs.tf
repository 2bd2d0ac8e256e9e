output "cloud_config" {
  description = "The rendered #cloud-config document."
  value       = local.cloud_config
  sensitive   = true
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
