//! Azure: route tables through Azure Resource Manager.
//!
//! A thin typed ARM client over `reqwest` ([`arm`]) with `azure_identity` credentials
//! ([`credential`]). Every pass writes a table with ONE conditional PUT: read the table
//! and its etag, fold the batch into the route list in memory ([`merge`], pure), PUT it
//! with `If-Match`, follow the long-running operation and report its true outcome.
//!
//! - [`config`]: [`AzureConfig`] and its checks.
//! - `provider`: [`AzureProvider`] and its `CloudProvider` face, delegating to
//! - `tables`: listing and the read-modify-write of one table,
//! - `nodes`: providerID resolution (one by one, or from a resource group's lists) and the
//!   NIC bodies it remembers for the forwarding check,
//! - `forwarding`: turning IP forwarding on on a NIC,
//! - `conditional`: the one loop both writes go through (ARM's 412 / 409 rules).

pub mod arm;
mod conditional;
pub mod config;
pub mod credential;
mod forwarding;
pub mod ids;
#[cfg(test)]
mod lro_tests;
pub mod merge;
pub mod models;
pub mod naming;
mod nodes;
mod provider;
mod tables;

pub use config::{AzureConfig, DEFAULT_ROUTE_LIMIT};
pub use provider::AzureProvider;

const OP_TABLE_READ: &str = "Microsoft.Network/routeTables/read";
const OP_TABLE_WRITE: &str = "Microsoft.Network/routeTables/write";
const OP_OPERATION_READ: &str = "Microsoft.Network/locations/operations/read";
const OP_NIC_READ: &str = "Microsoft.Network/networkInterfaces/read";
const OP_NIC_WRITE: &str = "Microsoft.Network/networkInterfaces/write";
const OP_VM_READ: &str = "Microsoft.Compute/virtualMachines/read";
const OP_VMSS_NIC_READ: &str =
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/networkInterfaces/read";
const OP_SUBNET_JOIN: &str = "Microsoft.Network/virtualNetworks/subnets/join/action";
const OP_PUBLIC_IP_JOIN: &str = "Microsoft.Network/publicIPAddresses/join/action";

/// Every ARM operation the Azure provider can invoke, and the linked actions ARM checks when
/// it does: the custom roles in terraform/ grant exactly these, and a test holds the provider
/// (and the mock) to the list.
pub const OPERATIONS: &[&str] = &[
    OP_TABLE_READ,
    OP_TABLE_WRITE,
    OP_OPERATION_READ,
    OP_NIC_READ,
    OP_NIC_WRITE,
    OP_VM_READ,
    OP_VMSS_NIC_READ,
    OP_SUBNET_JOIN,
    OP_PUBLIC_IP_JOIN,
];

/// ARM's linked authorization on the NIC write that turns IP forwarding on: the caller must
/// also hold `join/action` on the resources the NIC references (each IP configuration's
/// subnet, and its public IP if it has one), or the PUT is refused with 403
/// `LinkedAuthorizationFailed`. Never called, so never counted; granted on those resources.
pub const LINKED_OPERATIONS: &[&str] = &[OP_SUBNET_JOIN, OP_PUBLIC_IP_JOIN];
