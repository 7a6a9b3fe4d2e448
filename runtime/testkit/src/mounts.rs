//! The test disks' mounts, named by the mounting process so that the mounts of a test process
//! killed before its `Drop` ran (a timeout, kill -9) can be told apart and removed.

use std::path::Path;
use std::process::Command;

/// Unmounts every mount whose source is `prefix` followed by the id of a process that is gone.
pub(crate) fn unmount_orphans(prefix: &str) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    for line in mounts.lines() {
        let mut fields = line.split(' ');
        let (Some(source), Some(mount_point)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some(pid) = source.strip_prefix(prefix) else {
            continue;
        };
        if Path::new("/proc").join(pid).exists() {
            continue;
        }
        let unmounted = Command::new("umount").arg("-l").arg(mount_point).status();
        if unmounted.is_ok_and(|s| s.success()) {
            let _ = std::fs::remove_dir(mount_point);
        }
    }
}
