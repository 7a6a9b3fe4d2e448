//! Copies what the workers print (their `<id>.out` files) to this process's standard output,
//! line by line, so that lines of different workers never mix. The files outlive any process:
//! nothing printed is lost when the JobMaster that started the workers dies.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

const POLL_INTERVAL: Duration = Duration::from_millis(50);

pub struct OutputForwarder {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl OutputForwarder {
    /// Follows every `*.out` file in `dir`, those that appear later included.
    pub fn start(dir: PathBuf) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || follow(&dir, &stopping));
        OutputForwarder { stop, thread }
    }

    /// Copies what is left once the workers have exited, then stops.
    pub fn finish(self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.thread.join();
    }
}

/// One followed file: where it was read up to, and a line not yet ended.
struct Followed {
    file: File,
    partial: Vec<u8>,
}

fn follow(dir: &Path, stop: &AtomicBool) {
    let mut files: BTreeMap<PathBuf, Followed> = BTreeMap::new();
    let mut chunk = Vec::new();
    loop {
        // Read the flag first: a pass that starts after it was set sees everything written.
        let last = stop.load(Ordering::Acquire);
        for path in out_files(dir) {
            if !files.contains_key(&path)
                && let Ok(file) = File::open(&path)
            {
                files.insert(
                    path.clone(),
                    Followed {
                        file,
                        partial: Vec::new(),
                    },
                );
            }
        }
        let mut out = std::io::stdout().lock();
        for followed in files.values_mut() {
            chunk.clear();
            if followed.file.read_to_end(&mut chunk).is_err() || chunk.is_empty() {
                continue;
            }
            followed.partial.extend_from_slice(&chunk);
            if let Some(end) = followed.partial.iter().rposition(|b| *b == b'\n') {
                let _ = out.write_all(&followed.partial[..=end]);
                followed.partial.drain(..=end);
            }
        }
        if last {
            for followed in files.values().filter(|f| !f.partial.is_empty()) {
                let _ = out.write_all(&followed.partial);
                let _ = out.write_all(b"\n");
            }
            let _ = out.flush();
            return;
        }
        let _ = out.flush();
        drop(out);
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn out_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "out"))
        .collect()
}
