output "control_plane_instance_id" {
  description = "Instance id of the control plane."
  value       = aws_instance.control_plane.id
}

output "control_plane_private_ip" {
  description = "Private IP of the control plane (API server on :6443)."
  value       = aws_instance.control_plane.private_ip
}

output "worker_instance_ids" {
  description = "Instance ids of the workers."
  value       = aws_instance.worker[*].id
}

output "kubeconfig_command" {
  description = "Fetches the admin kubeconfig through EC2 Instance Connect Endpoint; the second command tunnels the API server to localhost:6443, which the kubeconfig already points at after the sed."
  value = join("\n", [
    "ssh -o ProxyCommand='aws ec2-instance-connect open-tunnel --region ${data.aws_region.current.name} --instance-id %h' ubuntu@${aws_instance.control_plane.id} sudo cat /etc/kubernetes/admin.conf | sed 's#server: https://.*:6443#server: https://127.0.0.1:6443#' > kubeconfig",
    "ssh -N -L 6443:${aws_instance.control_plane.private_ip}:6443 -o ProxyCommand='aws ec2-instance-connect open-tunnel --region ${data.aws_region.current.name} --instance-id %h' ubuntu@${aws_instance.control_plane.id} &",
  ])
}
