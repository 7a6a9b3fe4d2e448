//! A disk a test can slow down: a FUSE filesystem mounted on a temporary directory that passes
//! every request through to a backing directory, each write and sync waiting a delay the test
//! sets first. Processes using it see a real filesystem (RocksDB's files, hard links, renames,
//! locks, fsync) whose durable operations are as slow as an overloaded disk's. Mounting needs
//! root (CAP_SYS_ADMIN) and /dev/fuse; without them, `mount` says why.

mod passthrough;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fuser::{BackgroundSession, Config, MountOption};
use tempfile::TempDir;

use crate::mounts;

/// The mount's source name: this prefix and the mounting process's id.
const SOURCE: &str = "spate-slow-disk-";

pub struct SlowDisk {
    /// Unmounts when dropped, before the mount point goes.
    session: Option<BackgroundSession>,
    mount_point: TempDir,
    delay_micros: Arc<AtomicU64>,
}

impl SlowDisk {
    /// Mounts a passthrough of `backing`, at full speed until [`SlowDisk::slow_down`].
    pub fn mount(backing: &Path) -> Result<SlowDisk, String> {
        mounts::unmount_orphans(SOURCE);
        let mount_point = tempfile::tempdir().map_err(|e| format!("mount point: {e}"))?;
        let delay_micros = Arc::new(AtomicU64::new(0));
        let filesystem = passthrough::Passthrough::new(backing, delay_micros.clone())
            .map_err(|e| format!("opening {}: {e:?}", backing.display()))?;
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName(format!("{SOURCE}{}", std::process::id())),
            MountOption::Subtype("spate-slow-disk".into()),
            MountOption::DefaultPermissions,
        ];
        // Requests wait their delay side by side, as on a disk with a queue.
        config.n_threads = Some(4);
        let session = fuser::spawn_mount(filesystem, mount_point.path(), &config).map_err(|e| {
            format!(
                "mounting a FUSE filesystem on {} failed (it needs root and /dev/fuse): {e}",
                mount_point.path().display()
            )
        })?;
        Ok(SlowDisk {
            session: Some(session),
            mount_point,
            delay_micros,
        })
    }

    pub fn path(&self) -> &Path {
        self.mount_point.path()
    }

    /// From now on, each write and sync waits `delay` before it is done.
    pub fn slow_down(&self, delay: Duration) {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.delay_micros.store(micros, Ordering::Relaxed);
    }

    /// Back to full speed.
    pub fn heal(&self) {
        self.delay_micros.store(0, Ordering::Relaxed);
    }
}

impl Drop for SlowDisk {
    fn drop(&mut self) {
        // Lazily (fuser detaches the mount): a process that still has a file open there keeps
        // it until it ends.
        drop(self.session.take());
    }
}
