//! Which worker processes a pool started and how each ended, kept as files: `<dir>/<id>.pid`
//! once started, `<dir>/<id>.exit` once ended. Worker processes outlive the JobMaster that
//! started them (they keep their tasks for the next one), so whoever outlives it reads them
//! here: the embedded cluster (which kills and reaps them, and reports how they ended) and a
//! JobMaster that replaces the dead one (which adopts them instead of starting more).
//!
//! Workers are kept by index; the worker at an index that is started again gets the next
//! generation in its id (`worker-1`, then `worker-1.1`), so logs and state directories of the
//! dead one stay apart and tests can address "worker 1" whichever process runs it now.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;

/// The id of the worker at `index`, started for the `generation`th time (from 0).
pub fn worker_id(index: usize, generation: u32) -> String {
    match generation {
        0 => format!("worker-{index}"),
        g => format!("worker-{index}.{g}"),
    }
}

/// The index and generation in a worker id.
fn parse_id(id: &str) -> Option<(usize, u32)> {
    let rest = id.strip_prefix("worker-")?;
    match rest.split_once('.') {
        Some((index, generation)) => Some((index.parse().ok()?, generation.parse().ok()?)),
        None => Some((rest.parse().ok()?, 0)),
    }
}

/// How a worker process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Its parent waited for it.
    Exited(ExitStatus),
    /// Killed because it had to be (silent, or still running when its job was over).
    Killed,
}

/// One worker process, as the ledger knows it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    pub index: usize,
    pub generation: u32,
    pub pid: u32,
    pub ended: Option<Ended>,
}

impl Entry {
    /// Not known to have ended, and its process is there.
    pub fn running(&self) -> bool {
        self.ended.is_none() && alive(self.pid)
    }
}

#[derive(Debug, Clone)]
pub struct Ledger {
    dir: PathBuf,
}

impl Ledger {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Ledger { dir: dir.into() }
    }

    pub fn started(&self, id: &str, pid: u32) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        write_whole(self.dir.join(format!("{id}.pid")), &pid.to_string())
    }

    /// Records how `id` ended, unless that is known already (a worker killed by its resource
    /// manager, then reaped by the cluster, stays killed).
    pub fn ended(&self, id: &str, how: Ended) -> std::io::Result<()> {
        let path = self.dir.join(format!("{id}.exit"));
        if path.exists() {
            return Ok(());
        }
        let text = match how {
            Ended::Exited(status) => format!("exit {}", status.into_raw()),
            Ended::Killed => "killed".to_string(),
        };
        write_whole(path, &text)
    }

    /// Every worker started, by index then generation.
    pub fn entries(&self) -> Vec<Entry> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut entries: Vec<Entry> = dir
            .flatten()
            .filter_map(|file| {
                let name = file.file_name().into_string().ok()?;
                let id = name.strip_suffix(".pid")?.to_string();
                let (index, generation) = parse_id(&id)?;
                let pid = std::fs::read_to_string(file.path()).ok()?.parse().ok()?;
                let ended = self.read_ended(&id);
                Some(Entry {
                    id,
                    index,
                    generation,
                    pid,
                    ended,
                })
            })
            .collect();
        entries.sort_by_key(|e| (e.index, e.generation));
        entries
    }

    /// The last worker started at each index; `None` for an index never used.
    pub fn latest(&self) -> Vec<Option<Entry>> {
        let mut latest: BTreeMap<usize, Entry> = BTreeMap::new();
        for entry in self.entries() {
            latest.insert(entry.index, entry);
        }
        let len = latest.keys().next_back().map_or(0, |last| last + 1);
        (0..len).map(|index| latest.remove(&index)).collect()
    }

    fn read_ended(&self, id: &str) -> Option<Ended> {
        let text = std::fs::read_to_string(self.dir.join(format!("{id}.exit"))).ok()?;
        match text.split_once(' ') {
            Some(("exit", raw)) => Some(Ended::Exited(ExitStatus::from_raw(raw.parse().ok()?))),
            _ => Some(Ended::Killed),
        }
    }
}

/// Written under another name and renamed, so a reader never sees half of it.
fn write_whole(path: PathBuf, text: &str) -> std::io::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text)?;
    std::fs::rename(partial, path)
}

/// Whether process `pid` exists and has not exited (a zombie has).
pub fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    !zombie(pid)
}

#[cfg(target_os = "linux")]
fn zombie(pid: i32) -> bool {
    // The state is the first field after the command name, which ends with the last ')'.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

#[cfg(not(target_os = "linux"))]
fn zombie(_pid: i32) -> bool {
    false
}

/// Kills process `pid` (SIGKILL) without waiting for it.
pub fn kill(pid: u32) -> std::io::Result<()> {
    let pid = i32::try_from(pid).map_err(std::io::Error::other)?;
    // SAFETY: kill(2) with a pid from the ledger, which names a worker process.
    match unsafe { libc::kill(pid, libc::SIGKILL) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_index_and_generation() {
        assert_eq!(worker_id(1, 0), "worker-1");
        assert_eq!(worker_id(1, 2), "worker-1.2");
        assert_eq!(parse_id("worker-1.2"), Some((1, 2)));
        assert_eq!(parse_id("worker-3"), Some((3, 0)));
        assert_eq!(parse_id("worker-x"), None);
    }

    #[test]
    fn keeps_the_latest_process_of_each_index_and_how_it_ended() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(dir.path());
        ledger.started("worker-0", 10).unwrap();
        ledger.started("worker-1", 11).unwrap();
        ledger
            .ended("worker-1", Ended::Exited(ExitStatus::from_raw(9)))
            .unwrap();
        ledger.started("worker-1.1", 12).unwrap();
        ledger.started("worker-3", 13).unwrap();
        ledger.ended("worker-3", Ended::Killed).unwrap();
        ledger
            .ended("worker-3", Ended::Exited(ExitStatus::from_raw(0)))
            .unwrap();

        let latest = ledger.latest();
        let ids: Vec<Option<&str>> = latest
            .iter()
            .map(|e| e.as_ref().map(|e| e.id.as_str()))
            .collect();
        assert_eq!(
            ids,
            [Some("worker-0"), Some("worker-1.1"), None, Some("worker-3")]
        );
        assert_eq!(
            latest[3].as_ref().unwrap().ended,
            Some(Ended::Killed),
            "the first word on how it ended stays"
        );
        let first = &ledger.entries()[1];
        assert_eq!(first.id, "worker-1");
        assert_eq!(
            first.ended,
            Some(Ended::Exited(ExitStatus::from_raw(9))),
            "killed by signal 9"
        );
    }

    #[test]
    fn a_process_that_exited_is_not_alive() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!alive(pid));
        assert!(alive(std::process::id()));
    }
}
