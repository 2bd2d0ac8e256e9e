output "vpc_id" {
  description = "VPC id."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "VPC CIDR (cni-cloud's CNI_CLOUD_VPC_CIDRS)."
  value       = aws_vpc.this.cidr_block
}

output "private_subnet_ids" {
  description = "Node subnet id per availability zone."
  value       = { for az, s in aws_subnet.private : az => s.id }
}

output "route_table_ids" {
  description = "The cluster-tagged route table id per availability zone: the tables cni-cloud manages."
  value       = { for az, rt in aws_route_table.private : az => rt.id }
}

output "node_security_group_id" {
  description = "Security group of the nodes (pod CIDRs admitted)."
  value       = aws_security_group.nodes.id
}
