//! Forwarding sysctls. Pods are routed through the host (no bridge, no overlay), so the host
//! must forward. IPv6 forwarding is only switched on for nodes with an IPv6 pod CIDR: turning
//! it on also makes Linux ignore router advertisements (unless accept_ra=2), which an
//! IPv4-only node does not need to risk.

use std::fs;
use std::path::PathBuf;

use super::error::InstallError;

pub const IPV4_FORWARD: &str = "net/ipv4/ip_forward";
pub const IPV6_FORWARD: &str = "net/ipv6/conf/all/forwarding";

pub struct Sysctls {
    pub root: PathBuf,
}

impl Sysctls {
    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    pub fn read(&self, key: &str) -> Result<String, InstallError> {
        let path = self.path(key);
        fs::read_to_string(&path)
            .map(|value| value.trim().to_owned())
            .map_err(InstallError::io("cannot read sysctl", path))
    }

    /// Fails unless the sysctl can be written (checked before changing anything).
    pub fn check_writable(&self, key: &str) -> Result<(), InstallError> {
        let path = self.path(key);
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map(drop)
            .map_err(InstallError::io("sysctl", path))
    }

    /// Sets the sysctl to `value`; returns whether it had another value before.
    pub fn ensure(&self, key: &str, value: &str) -> Result<bool, InstallError> {
        if self.read(key)? == value {
            return Ok(false);
        }
        let path = self.path(key);
        fs::write(&path, value).map_err(InstallError::io("cannot write sysctl", &path))?;
        Ok(true)
    }
}
