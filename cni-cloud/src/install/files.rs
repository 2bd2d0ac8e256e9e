//! Host file edge: atomic replacement and cheap change detection.
//!
//! A runtime must never see a half-written plugin ("text file busy", truncated ELF) or a
//! half-written config, and containerd only reloads the conf dir on Write, Rename or Remove
//! (not Create). So every file is written to a temporary name in the same directory, synced,
//! and renamed over the final name; then the directory is synced so the rename survives a
//! crash.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::{AccessFlags, access};

use super::error::InstallError;

/// Identity of a file as last seen: any replacement, edit or removal changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

pub fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let meta = fs::symlink_metadata(path).ok()?;
    Some(Fingerprint {
        dev: meta.dev(),
        ino: meta.ino(),
        len: meta.len(),
        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
    })
}

/// The temporary name used next to `name`: hidden, and with an extension libcni never loads.
pub fn temp_name(name: &str) -> String {
    format!(".{name}.cni-cloud-tmp.{}", std::process::id())
}

/// Writes `name` in `dir` atomically from `source` (a reader), with `mode`.
pub fn replace_atomically(
    dir: &Path,
    name: &str,
    mode: u32,
    source: &mut dyn Read,
) -> Result<(), InstallError> {
    let final_path = dir.join(name);
    let temp_path = dir.join(temp_name(name));
    let result = (|| {
        // A crashed earlier run of this pid number may have left the temp file behind.
        let _ = fs::remove_file(&temp_path);
        let mut temp = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_CLOEXEC)
            .open(&temp_path)?;
        io::copy(source, &mut temp)?;
        temp.flush()?;
        // The umask may have narrowed the mode; the plugin must be executable by the runtime.
        temp.set_permissions(fs::Permissions::from_mode(mode))?;
        temp.sync_all()?;
        drop(temp);
        fs::rename(&temp_path, &final_path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp_path);
    }
    result.map_err(InstallError::io("cannot write", final_path))
}

pub fn write_bytes_atomically(
    dir: &Path,
    name: &str,
    mode: u32,
    contents: &[u8],
) -> Result<(), InstallError> {
    replace_atomically(dir, name, mode, &mut &contents[..])
}

pub fn copy_atomically(source: &Path, dir: &Path, name: &str) -> Result<(), InstallError> {
    let mut file = File::open(source).map_err(InstallError::io("cannot read", source))?;
    replace_atomically(dir, name, 0o755, &mut file)
}

/// Removes a file and syncs its directory; a file already gone is fine.
pub fn remove(path: &Path) -> Result<bool, InstallError> {
    match fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                sync_dir(dir).map_err(InstallError::io("cannot sync", dir))?;
            }
            Ok(true)
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(InstallError::io("cannot remove", path)(err)),
    }
}

pub fn rename(from: &Path, to: &Path) -> Result<(), InstallError> {
    fs::rename(from, to).map_err(InstallError::io("cannot rename", from))?;
    if let Some(dir) = to.parent() {
        sync_dir(dir).map_err(InstallError::io("cannot sync", dir))?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Whether two files hold the same bytes (streamed, so a large binary is not held in memory).
pub fn same_contents(a: &Path, b: &Path) -> io::Result<bool> {
    let (mut fa, mut fb) = (File::open(a)?, File::open(b)?);
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Fails with a clear error unless `dir` is an existing directory we may create files in.
/// Checked before anything is changed so a misconfigured mount changes nothing.
pub fn check_writable_dir(what: &'static str, dir: &Path) -> Result<(), InstallError> {
    let meta = fs::metadata(dir).map_err(|source| InstallError::Io {
        what,
        path: dir.to_owned(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(InstallError::Io {
            what,
            path: dir.to_owned(),
            source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    // access(2) honours read-only mounts (EROFS) as well as permissions.
    access(dir, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|errno| InstallError::NotWritable {
        what,
        path: dir.to_owned(),
        source: io::Error::from(errno),
    })
}

/// Reads every regular file of a directory (name, contents); CNI configs are small.
pub fn read_dir_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, InstallError> {
    let mut files = Vec::new();
    let entries = fs::read_dir(dir).map_err(InstallError::io("cannot list", dir))?;
    for entry in entries {
        let entry = entry.map_err(InstallError::io("cannot list", dir))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let path: PathBuf = entry.path();
        let Ok(meta) = fs::metadata(&path) else {
            continue; // removed meanwhile, or a dangling symlink
        };
        if !meta.is_file() || meta.len() > 1024 * 1024 {
            continue;
        }
        if let Ok(contents) = fs::read(&path) {
            files.push((name, contents));
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        write_bytes_atomically(dir.path(), "a.conflist", 0o644, b"one").unwrap();
        let before = fingerprint(&dir.path().join("a.conflist")).unwrap();
        write_bytes_atomically(dir.path(), "a.conflist", 0o644, b"two!").unwrap();
        assert_eq!(fs::read(dir.path().join("a.conflist")).unwrap(), b"two!");
        assert_ne!(fingerprint(&dir.path().join("a.conflist")).unwrap(), before);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.conflist")]);
        let mode = fs::metadata(dir.path().join("a.conflist"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn compares_contents() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        fs::write(&a, vec![7u8; 200_000]).unwrap();
        fs::write(&b, vec![7u8; 200_000]).unwrap();
        let mut other = vec![7u8; 200_000];
        other[150_000] = 8;
        fs::write(&c, other).unwrap();
        assert!(same_contents(&a, &b).unwrap());
        assert!(!same_contents(&a, &c).unwrap());
    }

    #[test]
    fn missing_dir_is_a_clear_error() {
        let err = check_writable_dir("CNI bin dir", Path::new("/nonexistent/cni")).unwrap_err();
        assert!(
            err.to_string().contains("CNI bin dir /nonexistent/cni"),
            "{err}"
        );
    }
}
