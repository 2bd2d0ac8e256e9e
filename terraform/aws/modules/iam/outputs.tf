output "policy_arn" {
  description = "ARN of the controller policy."
  value       = aws_iam_policy.controller.arn
}

output "policy_json" {
  description = "The rendered controller policy document."
  value       = local.policy
}

output "instance_profile_name" {
  description = "Instance profile for the nodes (the controller falls back to it through IMDS)."
  value       = aws_iam_instance_profile.node.name
}

output "node_role_arn" {
  description = "ARN of the nodes' role."
  value       = aws_iam_role.node.arn
}

output "irsa_role_arn" {
  description = "ARN of the IRSA role for the controller's ServiceAccount (eks.amazonaws.com/role-arn), or null without oidc_provider_arn."
  value       = one(aws_iam_role.irsa[*].arn)
}
