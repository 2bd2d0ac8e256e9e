//! nftables edge. The installer only ever touches one `inet` table it owns; the whole table
//! is replaced in one `nft -f` transaction, so the kernel never holds a half-applied ruleset.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::error::InstallError;

pub trait Firewall {
    /// Validates a transaction without committing it (`nft --check`); needs the same
    /// privileges as applying it, so it doubles as the permission pre-flight.
    fn check(&self, transaction: &str) -> Result<(), InstallError>;
    /// Applies a transaction atomically.
    fn apply(&self, transaction: &str) -> Result<(), InstallError>;
    /// The table as the kernel has it now (`None` when it does not exist).
    fn list_table(&self, table: &str) -> Result<Option<String>, InstallError>;
}

/// Drives the `nft` command-line tool.
pub struct NftCli {
    pub binary: PathBuf,
}

impl NftCli {
    fn run(
        &self,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<(bool, String, String), InstallError> {
        let mut child = Command::new(&self.binary)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| {
                InstallError::Nft(format!(
                    "cannot run {} ({err}); the image must ship nftables",
                    self.binary.display()
                ))
            })?;
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin was piped");
            pipe.write_all(input.as_bytes())
                .map_err(|err| InstallError::Nft(format!("writing to nft: {err}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|err| InstallError::Nft(format!("waiting for nft: {err}")))?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }

    fn transaction(&self, extra: &[&str], transaction: &str) -> Result<(), InstallError> {
        let mut args = extra.to_vec();
        args.extend(["-f", "-"]);
        let (ok, _, stderr) = self.run(&args, Some(transaction))?;
        if ok {
            Ok(())
        } else {
            Err(InstallError::Nft(format!(
                "nft {} failed: {stderr}{}",
                args.join(" "),
                permission_hint(&stderr)
            )))
        }
    }
}

fn permission_hint(stderr: &str) -> &'static str {
    if stderr.contains("Operation not permitted") || stderr.contains("Permission denied") {
        " (the installer needs CAP_NET_ADMIN in the host network namespace)"
    } else {
        ""
    }
}

impl Firewall for NftCli {
    fn check(&self, transaction: &str) -> Result<(), InstallError> {
        self.transaction(&["--check"], transaction)
    }

    fn apply(&self, transaction: &str) -> Result<(), InstallError> {
        self.transaction(&[], transaction)
    }

    fn list_table(&self, table: &str) -> Result<Option<String>, InstallError> {
        let (ok, stdout, stderr) = self.run(&["list", "table", "inet", table], None)?;
        if ok {
            Ok(Some(stdout))
        } else if stderr.contains("No such file or directory") {
            Ok(None)
        } else {
            Err(InstallError::Nft(format!(
                "nft list table inet {table} failed: {stderr}{}",
                permission_hint(&stderr)
            )))
        }
    }
}
