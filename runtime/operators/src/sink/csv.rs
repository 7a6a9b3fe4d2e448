use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use arrow_array::{ArrayRef, RecordBatch};
use arrow_cast::cast;
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::DataType;
use spate_api::{Operator, OperatorContext, OperatorError, Output, Result};

/// Writes rows as CSV (no header) into `part-<subtask>.csv` under a directory, one file per
/// subtask. Timestamps are written as epoch milliseconds so that readers need no date parsing.
pub struct CsvFileSink {
    directory: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl CsvFileSink {
    pub fn new(directory: impl Into<PathBuf>) -> Self {
        CsvFileSink {
            directory: directory.into(),
            writer: None,
        }
    }

    pub fn part_file(directory: &Path, subtask: u32) -> PathBuf {
        directory.join(format!("part-{subtask}.csv"))
    }
}

fn printable(column: &ArrayRef) -> Result<ArrayRef> {
    Ok(match column.data_type() {
        DataType::Timestamp(_, _) => cast(column, &DataType::Int64)?,
        _ => column.clone(),
    })
}

impl Operator for CsvFileSink {
    fn open(&mut self, ctx: &OperatorContext) -> Result<()> {
        std::fs::create_dir_all(&self.directory)?;
        let path = Self::part_file(&self.directory, ctx.subtask);
        let file = File::create(&path).map_err(|e| {
            OperatorError::invalid(format!("cannot create {}: {e}", path.display()))
        })?;
        self.writer = Some(BufWriter::with_capacity(1 << 20, file));
        Ok(())
    }

    fn process_batch(&mut self, batch: RecordBatch, _out: &mut Output) -> Result<()> {
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| OperatorError::invalid("csv sink used before open"))?;
        let columns = batch
            .columns()
            .iter()
            .map(printable)
            .collect::<Result<Vec<_>>>()?;
        let options = FormatOptions::default();
        let formatters = columns
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        let mut line = String::new();
        for row in 0..batch.num_rows() {
            line.clear();
            for (i, formatter) in formatters.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                line.push_str(&formatter.value(row).to_string());
            }
            line.push('\n');
            writer.write_all(line.as_bytes())?;
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Output) -> Result<()> {
        if let Some(writer) = self.writer.as_mut() {
            writer.flush()?;
            writer.get_ref().sync_all()?;
        }
        Ok(())
    }
}
