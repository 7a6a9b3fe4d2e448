//! The file sink. Without checkpoints each subtask writes one part file, committed at the end of
//! input. With checkpoints it is exactly-once (two-phase commit): at each barrier the current
//! part file is closed and kept in the checkpoint as pending; when the checkpoint completes it
//! is committed (renamed to its visible name). A restore commits the pending files of the
//! checkpoint it restores, so output is neither lost nor duplicated; files written after that
//! checkpoint stay hidden in-progress files that readers skip.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use spate_api::{
    Operator, OperatorContext, OperatorError, OperatorFactory, OperatorSnapshot, Output, Result,
    split_row_kinds,
};

use super::encode::encode;
use super::format::Format;
use super::part_file::{PartFileWriter, PendingFile};
use crate::blackhole::check_batch;

pub(super) fn factory(
    table: &str,
    schema: SchemaRef,
    directory: PathBuf,
    format: Format,
) -> Arc<dyn OperatorFactory> {
    let table = table.to_string();
    Arc::new(move |ctx: &OperatorContext| -> Result<Box<dyn Operator>> {
        Ok(Box::new(FileSink {
            table: table.clone(),
            schema: schema.clone(),
            directory: directory.clone(),
            format,
            subtask: ctx.subtask,
            run: run_token(),
            checkpointing: ctx.state.checkpointing,
            part: None,
            encoded: Vec::new(),
            pending: BTreeMap::new(),
        }))
    })
}

struct FileSink {
    table: String,
    schema: SchemaRef,
    directory: PathBuf,
    format: Format,
    subtask: u32,
    /// Unique to this sink instance and part of every file name it commits, so that a later
    /// job, or a later run of the same job, writing into the same directory never replaces
    /// committed output.
    run: String,
    checkpointing: bool,
    /// Started with the first row, so a subtask without rows leaves no empty file (as in Flink).
    part: Option<PartFileWriter>,
    /// Reused between batches.
    encoded: Vec<u8>,
    /// Closed part files by the checkpoint that closed them, until one completes.
    pending: BTreeMap<u64, PendingFile>,
}

const PENDING_PREFIX: &str = "pending:";

impl FileSink {
    /// Commits what the restored checkpoint had pending: every old subtask's files, not only
    /// this subtask's share. Region failover restarts only the failed pipeline, so the subtask
    /// that wrote a file may be the only one restored, while the others keep running and never
    /// look at the checkpoint again; a file left to one of them would stay hidden for good.
    /// Committing is idempotent, so subtasks restored together may each commit the same file.
    fn commit_restored(&self, ctx: &OperatorContext) -> Result<()> {
        let Some(restored) = &ctx.state.restored else {
            return Ok(());
        };
        for (name, value) in &restored.entries {
            if !name.starts_with(PENDING_PREFIX) {
                continue;
            }
            let committed = PendingFile::decode(value)?.commit()?;
            tracing::debug!(table = %self.table, file = %committed.display(), "restored part file committed");
        }
        Ok(())
    }
}

impl Operator for FileSink {
    fn open(&mut self, ctx: &OperatorContext) -> Result<()> {
        std::fs::create_dir_all(&self.directory).map_err(|e| {
            OperatorError::invalid(format!("cannot create {}: {e}", self.directory.display()))
        })?;
        self.commit_restored(ctx)
    }

    fn process_batch(&mut self, batch: RecordBatch, _out: &mut Output) -> Result<()> {
        let (data, kinds) = split_row_kinds(&batch)?;
        check_batch(&self.table, &self.schema, &data)?;
        if data.num_rows() == 0 {
            return Ok(());
        }
        self.encoded.clear();
        encode(self.format, &data, kinds.as_deref(), &mut self.encoded)?;
        let part = match &mut self.part {
            Some(part) => part,
            none => none.insert(PartFileWriter::create(
                &self.directory,
                &format!("{}-{}", self.run, self.subtask),
                // Named when it is committed: by the checkpoint it belongs to (see snapshot).
                "0",
                self.format.extension(),
            )?),
        };
        part.write(&self.encoded)
    }

    fn finish(&mut self, _out: &mut Output) -> Result<()> {
        // With checkpoints, the final snapshot pre-commits and its completion commits.
        if !self.checkpointing
            && let Some(part) = self.part.take()
        {
            let committed = part.commit()?;
            tracing::debug!(table = %self.table, file = %committed.display(), "part file committed");
        }
        Ok(())
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<OperatorSnapshot> {
        if let Some(part) = self.part.take() {
            // The visible name carries the checkpoint: unique across attempts and rescales,
            // since a restore continues after the checkpoint it restores.
            let index = match checkpoint_id {
                u64::MAX => "end".to_string(),
                id => id.to_string(),
            };
            let mut pending = part.close()?;
            let name = format!(
                "part-{}-{}-{index}.{}",
                self.run,
                self.subtask,
                self.format.extension()
            );
            pending.committed = self.directory.join(name);
            self.pending.insert(checkpoint_id, pending);
        }
        let entries = self
            .pending
            .values()
            .map(|p| {
                let name = format!("{PENDING_PREFIX}{}", p.committed.display());
                (name, p.encode())
            })
            .collect();
        Ok(OperatorSnapshot {
            entries,
            keyed: None,
        })
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        let later = match checkpoint_id.checked_add(1) {
            Some(next) => self.pending.split_off(&next),
            None => BTreeMap::new(),
        };
        for pending in std::mem::replace(&mut self.pending, later).into_values() {
            let committed = pending.commit()?;
            tracing::debug!(table = %self.table, file = %committed.display(), checkpoint_id, "part file committed");
        }
        Ok(())
    }
}

/// Process id and start instant, in hex: distinct for every sink instance ever started here.
fn run_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}{nanos:x}", std::process::id())
}
