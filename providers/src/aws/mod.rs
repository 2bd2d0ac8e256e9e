//! AWS EC2 route-table provider (see issue: AWS provider).
