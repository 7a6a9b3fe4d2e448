//! A small disk that a test can fill: a tmpfs of fixed size mounted on a temporary directory.
//! Filling it (a ballast file written until the kernel answers ENOSPC) makes every write of the
//! processes using it fail as on a full disk; freeing it deletes the ballast. Mounting needs
//! root (CAP_SYS_ADMIN); without it, `mount` says why and the test decides what to do.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::mounts;

const BALLAST: &str = ".ballast";
/// The mount's source name: this prefix and the mounting process's id.
const SOURCE: &str = "spate-test-disk-";

pub struct SmallDisk {
    mount_point: TempDir,
}

impl SmallDisk {
    /// A tmpfs of `size_mib` MiB (memory only as it fills), or why it could not be mounted.
    pub fn mount(size_mib: u64) -> Result<SmallDisk, String> {
        mounts::unmount_orphans(SOURCE);
        let mount_point = tempfile::tempdir().map_err(|e| format!("mount point: {e}"))?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size_mib}m,mode=0755"))
            .arg(format!("{SOURCE}{}", std::process::id()))
            .arg(mount_point.path())
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount -t tmpfs on {} failed (it needs root): {}",
                mount_point.path().display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(SmallDisk { mount_point })
    }

    pub fn path(&self) -> &Path {
        self.mount_point.path()
    }

    /// Takes every free byte (again, when called while full: what was freed meanwhile);
    /// returns how many bytes the ballast grew by.
    pub fn fill(&self) -> std::io::Result<u64> {
        let mut ballast = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.ballast())?;
        let chunk = vec![0u8; 1 << 20];
        let mut written = 0u64;
        loop {
            match ballast.write(&chunk) {
                Ok(0) => return Ok(written),
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => return Ok(written),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Gives the ballast's space back.
    pub fn free(&self) {
        let _ = std::fs::remove_file(self.ballast());
    }

    fn ballast(&self) -> PathBuf {
        self.path().join(BALLAST)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: a process that still has a file open there keeps the mount busy until it ends.
        // The mount point itself goes with the TempDir.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.mount_point.path())
            .status();
    }
}
