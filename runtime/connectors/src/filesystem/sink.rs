//! The file sink: each subtask writes its rows to one part file, committed at the end of input.

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use spate_api::{Operator, OperatorContext, OperatorError, OperatorFactory, Output, Result};

use super::encode::encode;
use super::format::Format;
use super::part_file::PartFileWriter;
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
            part: None,
            encoded: Vec::new(),
        }))
    })
}

struct FileSink {
    table: String,
    schema: SchemaRef,
    directory: PathBuf,
    format: Format,
    subtask: u32,
    /// Started with the first row, so a subtask without rows leaves no empty file (as in Flink).
    part: Option<PartFileWriter>,
    /// Reused between batches.
    encoded: Vec<u8>,
}

impl Operator for FileSink {
    fn open(&mut self, _ctx: &OperatorContext) -> Result<()> {
        std::fs::create_dir_all(&self.directory).map_err(|e| {
            OperatorError::invalid(format!("cannot create {}: {e}", self.directory.display()))
        })
    }

    fn process_batch(&mut self, batch: RecordBatch, _out: &mut Output) -> Result<()> {
        check_batch(&self.table, &self.schema, &batch)?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.encoded.clear();
        encode(self.format, &batch, &mut self.encoded)?;
        let part = match &mut self.part {
            Some(part) => part,
            none => none.insert(PartFileWriter::create(
                &self.directory,
                self.subtask,
                0,
                self.format.name(),
            )?),
        };
        part.write(&self.encoded)
    }

    fn finish(&mut self, _out: &mut Output) -> Result<()> {
        if let Some(part) = self.part.take() {
            let committed = part.commit()?;
            tracing::debug!(table = %self.table, file = %committed.display(), "part file committed");
        }
        Ok(())
    }
}
