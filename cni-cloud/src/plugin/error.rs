//! CNI error codes and the error type every verb returns.
//!
//! The spec's codes (SPEC.md "Error") plus ours from 100 up; README.md lists them all.

use serde::Serialize;

/// Spec 1: the plugin does not speak the requested cniVersion.
pub const INCOMPATIBLE_VERSION: u32 = 1;
/// Spec 2: a config field the plugin does not support.
pub const UNSUPPORTED_FIELD: u32 = 2;
/// Spec 3: container unknown (CHECK of an attachment we never made).
pub const UNKNOWN_CONTAINER: u32 = 3;
/// Spec 4: an invalid environment variable; the message names it.
pub const INVALID_ENV: u32 = 4;
/// Spec 6: stdin could not be decoded.
pub const DECODE: u32 = 6;
/// Spec 7: the config decoded but is invalid.
pub const INVALID_CONFIG: u32 = 7;
/// Spec 11: try again later (the IPAM lock is busy for too long).
pub const TRY_AGAIN: u32 = 11;
/// Spec 50: STATUS — the plugin cannot add containers now.
pub const NOT_AVAILABLE: u32 = 50;
/// Ours: every address of a range set is allocated.
pub const RANGE_EXHAUSTED: u32 = 100;
/// Ours: (CNI_CONTAINERID, CNI_IFNAME) already holds an allocation (ADD twice without DEL).
pub const ALREADY_ATTACHED: u32 = 101;
/// Ours: a kernel (netlink, sysctl, netns) operation failed.
pub const KERNEL: u32 = 102;
/// Ours: reading or writing the IPAM state under dataDir failed.
pub const STATE_IO: u32 = 103;
/// Ours: CHECK found the attachment differs from prevResult.
pub const CHECK_FAILED: u32 = 104;
/// Ours: the host-side veth name is already taken by another interface.
pub const HOST_NAME_TAKEN: u32 = 105;
/// Ours: a route the attachment needs is already held by another interface — the pod's
/// default route by another attachment, or the node's route to the address. Never taken over.
pub const ROUTE_TAKEN: u32 = 106;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    pub fn env(var: &str, why: impl std::fmt::Display) -> Self {
        Self::new(INVALID_ENV, format!("invalid {var}: {why}"))
    }

    pub fn config(why: impl Into<String>) -> Self {
        Self::new(INVALID_CONFIG, why)
    }

    pub fn kernel(what: &str, err: impl std::fmt::Display) -> Self {
        Self::new(KERNEL, format!("{what} failed")).with_details(err.to_string())
    }

    pub fn state(what: &str, err: impl std::fmt::Display) -> Self {
        Self::new(STATE_IO, format!("IPAM state: {what} failed")).with_details(err.to_string())
    }

    /// The spec's error object, in the version the caller asked for.
    pub fn to_json(&self, cni_version: &str) -> String {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(rename = "cniVersion")]
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            details: &'a str,
        }
        serde_json::to_string(&Wire {
            cni_version,
            code: self.code,
            msg: &self.msg,
            details: &self.details,
        })
        .expect("error object serializes")
    }
}

impl std::fmt::Display for CniError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "code {}: {}", self.code, self.msg)?;
        if !self.details.is_empty() {
            write!(f, " ({})", self.details)?;
        }
        Ok(())
    }
}

impl std::error::Error for CniError {}

pub type Result<T> = std::result::Result<T, CniError>;
