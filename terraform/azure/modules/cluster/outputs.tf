output "vm_ids" {
  description = "VM resource id per node key (control-plane, worker-<i>)."
  value       = { for k, vm in azurerm_linux_virtual_machine.node : k => vm.id }
}

output "nic_ids" {
  description = "NIC resource id per node key."
  value       = { for k, nic in azurerm_network_interface.node : k => nic.id }
}

output "control_plane_private_ip" {
  description = "Private IP of the control plane (API server on :6443)."
  value       = azurerm_network_interface.node["control-plane"].private_ip_address
}

output "public_ip_ids" {
  description = "Public IP resource id per node key (only the control plane's, with control_plane_public_ip): NICs link them, so the controller's identity needs join on them."
  value       = { for ip in azurerm_public_ip.control_plane : "control-plane" => ip.id }
}

output "control_plane_public_ip" {
  description = "Public IP of the control plane (null without control_plane_public_ip)."
  value       = one(azurerm_public_ip.control_plane[*].ip_address)
}

output "kubeconfig_command" {
  description = "Fetches the admin kubeconfig over SSH (from admin_cidrs); the second command tunnels the API server to localhost:6443, which the kubeconfig points at after the sed."
  value = join("\n", [
    "ssh ${var.admin_username}@${coalesce(one(azurerm_public_ip.control_plane[*].ip_address), azurerm_network_interface.node["control-plane"].private_ip_address)} sudo cat /etc/kubernetes/admin.conf | sed 's#server: https://.*:6443#server: https://127.0.0.1:6443#' > kubeconfig",
    "ssh -N -L 6443:127.0.0.1:6443 ${var.admin_username}@${coalesce(one(azurerm_public_ip.control_plane[*].ip_address), azurerm_network_interface.node["control-plane"].private_ip_address)} &",
  ])
}
