output "vpc_id" {
  description = "VPC id."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "VPC CIDR (cni-cloud's CNI_CLOUD_VPC_CIDRS)."
  value       = aws_vpc.this.cidr_block
}

output "private_subnet_ids" {
  description = "Node subnet id per availability zone, available once the subnets have egress (NAT gateway, default route, route table association): instances launched into them can install packages from their first boot."
  value       = { for az, s in aws_subnet.private : az => s.id }
  # A NAT gateway takes minutes to become available; nodes launched before it would run
  # their bootstrap without egress.
  depends_on = [aws_route.private_default, aws_route_table_association.private]
}

output "route_table_ids" {
  description = "The cluster-tagged route table id per availability zone: the tables cni-cloud manages."
  value       = { for az, rt in aws_route_table.private : az => rt.id }
}

output "node_security_group_id" {
  description = "Security group of the nodes (pod CIDRs admitted), available once its rules exist: Terraform creates the group without AWS's default allow-all egress rule."
  value       = aws_security_group.nodes.id
  depends_on = [
    aws_vpc_security_group_egress_rule.nodes_https,
    aws_vpc_security_group_egress_rule.nodes_http,
    aws_vpc_security_group_egress_rule.nodes_vpc,
    aws_vpc_security_group_egress_rule.nodes_pods,
    aws_vpc_security_group_ingress_rule.nodes_self,
    aws_vpc_security_group_ingress_rule.pods,
  ]
}
