//! A part file that readers see only once it is complete.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use spate_api::{OperatorError, Result};

/// One part file of a sink subtask. Bytes go to a hidden in-progress file, which the source skips;
/// [`PartFileWriter::commit`] makes it durable and gives it its visible name in one rename, so a
/// reader sees all of the file or none of it.
///
/// With checkpoints the two phases are apart: [`PartFileWriter::close`] at the barrier makes
/// the bytes durable under the hidden name (pre-commit), and [`PendingFile::commit`] renames
/// once the checkpoint is complete, also after a restore.
pub(super) struct PartFileWriter {
    in_progress: PathBuf,
    committed: PathBuf,
    writer: BufWriter<File>,
}

impl PartFileWriter {
    /// Starts `part-<writer>-<index>.<extension>` in `directory`.
    pub(super) fn create(
        directory: &Path,
        writer: &str,
        index: &str,
        extension: &str,
    ) -> Result<Self> {
        // Unique per process and instant, so that jobs writing the same directory at the same
        // time, or a retry after a crash, never share an in-progress file.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let in_progress = directory.join(format!(
            ".part-{writer}-{index}-{:x}-{nanos:x}.inprogress",
            std::process::id()
        ));
        let committed = directory.join(format!("part-{writer}-{index}.{extension}"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&in_progress)
            .map_err(|e| io_error("cannot create", &in_progress, e))?;
        Ok(PartFileWriter {
            in_progress,
            committed,
            writer: BufWriter::with_capacity(1 << 20, file),
        })
    }

    pub(super) fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer
            .write_all(bytes)
            .map_err(|e| io_error("cannot write", &self.in_progress, e))
    }

    /// Flushes and syncs the file under its hidden name.
    pub(super) fn close(self) -> Result<PendingFile> {
        let file = self
            .writer
            .into_inner()
            .map_err(|e| io_error("cannot write", &self.in_progress, e.into_error()))?;
        file.sync_all()
            .map_err(|e| io_error("cannot sync", &self.in_progress, e))?;
        Ok(PendingFile {
            in_progress: self.in_progress,
            committed: self.committed,
        })
    }

    /// Both phases at once, for jobs without checkpoints.
    pub(super) fn commit(self) -> Result<PathBuf> {
        self.close()?.commit()
    }
}

/// A complete part file still under its hidden name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PendingFile {
    pub in_progress: PathBuf,
    pub committed: PathBuf,
}

impl PendingFile {
    /// Renames the file to its visible name (replacing a file of that name from an earlier run)
    /// and syncs the directory so the rename survives a crash. Committing again after a restore,
    /// or by another subtask restored from the same checkpoint at the same moment, finds the
    /// file already visible and does nothing. Returns the committed path.
    pub(super) fn commit(&self) -> Result<PathBuf> {
        if !self.in_progress.exists() && self.committed.exists() {
            return Ok(self.committed.clone());
        }
        match std::fs::rename(&self.in_progress, &self.committed) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.committed.exists() => {
                return Ok(self.committed.clone());
            }
            Err(e) => return Err(io_error("cannot commit", &self.in_progress, e)),
        }
        if let Some(directory) = self.committed.parent() {
            File::open(directory)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_error("cannot sync", directory, e))?;
        }
        Ok(self.committed.clone())
    }

    /// As a checkpoint entry: the two paths, one per line.
    pub(super) fn encode(&self) -> Vec<u8> {
        format!(
            "{}\n{}",
            self.in_progress.display(),
            self.committed.display()
        )
        .into_bytes()
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Self> {
        let text = std::str::from_utf8(bytes).ok();
        let (in_progress, committed) = text.and_then(|t| t.split_once('\n')).ok_or_else(|| {
            OperatorError::invalid("file sink: malformed pending-file entry in the checkpoint")
        })?;
        Ok(PendingFile {
            in_progress: in_progress.into(),
            committed: committed.into(),
        })
    }
}

fn io_error(what: &str, path: &Path, error: std::io::Error) -> OperatorError {
    OperatorError::invalid(format!("{what} {}: {error}", path.display()))
}
