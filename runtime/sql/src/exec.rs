//! Operators that evaluate DataFusion physical expressions on Spate's batches, and the small
//! reshaping steps between them.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_cast::cast;
use arrow_schema::{DataType, SchemaRef};
use arrow_select::filter::{filter_record_batch, prep_null_mask_filter};
use datafusion_physical_expr::PhysicalExpr;
use spate_api::{
    Operator, OperatorContext, OperatorError, Output, Result, RowKind, SourceFactory, SourcePoll,
    SourceReader, Split, StateEntry, changelog_batch, row_kind_index,
};

fn df(error: datafusion_common::DataFusionError) -> OperatorError {
    OperatorError::invalid(error.strip_backtrace())
}

fn evaluate(exprs: &[Arc<dyn PhysicalExpr>], batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
    exprs
        .iter()
        .map(|e| {
            e.evaluate(batch)
                .and_then(|v| v.into_array(batch.num_rows()))
                .map_err(df)
        })
        .collect()
}

/// SELECT list: one expression per output column. A changelog's row kinds (the last column of
/// its batches, which no expression reads) follow when the output schema ends in them.
pub struct ExprProject {
    pub exprs: Vec<Arc<dyn PhysicalExpr>>,
    pub schema: SchemaRef,
}

impl Operator for ExprProject {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Output) -> Result<()> {
        let mut columns = evaluate(&self.exprs, &batch)?;
        if row_kind_index(&self.schema).is_some() {
            columns.push(batch.column(batch.num_columns() - 1).clone());
        }
        out.batch(RecordBatch::try_new(self.schema.clone(), columns)?);
        Ok(())
    }
}

/// An append-only stream's rows as a changelog's inserts (`+I`): where it joins a changelog.
pub struct AsInserts {
    /// The input's columns and the row kinds after them.
    pub schema: SchemaRef,
}

impl Operator for AsInserts {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Output) -> Result<()> {
        let kinds = vec![RowKind::Insert; batch.num_rows()];
        out.batch(changelog_batch(self.schema.clone(), &batch, &kinds)?);
        Ok(())
    }
}

/// WHERE: rows for which the predicate is true (not false, not null).
pub struct ExprFilter {
    pub predicate: Arc<dyn PhysicalExpr>,
}

impl Operator for ExprFilter {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Output) -> Result<()> {
        let keep = self
            .predicate
            .evaluate(&batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(df)?;
        let keep = keep
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| OperatorError::invalid("WHERE needs a boolean condition"))?;
        let keep = if keep.null_count() > 0 {
            prep_null_mask_filter(keep)
        } else {
            keep.clone()
        };
        if keep.true_count() == batch.num_rows() {
            out.batch(batch);
        } else {
            out.batch(filter_record_batch(&batch, &keep)?);
        }
        Ok(())
    }
}

/// Picks columns by index, casting where the target type differs, under new names.
pub struct Reshape {
    pub columns: Vec<(usize, DataType)>,
    pub schema: SchemaRef,
}

impl Operator for Reshape {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Output) -> Result<()> {
        let columns = self
            .columns
            .iter()
            .map(|(index, target)| {
                let column = batch.column(*index);
                if column.data_type() == target {
                    Ok(column.clone())
                } else {
                    Ok(cast(column, target)?)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        out.batch(RecordBatch::try_new(self.schema.clone(), columns)?);
        Ok(())
    }
}

/// A source with computed columns appended, so that a watermark may use them.
pub struct ComputedSource {
    pub inner: Arc<dyn SourceFactory>,
    pub exprs: Vec<Arc<dyn PhysicalExpr>>,
    pub schema: SchemaRef,
}

impl SourceFactory for ComputedSource {
    fn splits(&self, parallelism: u32) -> Vec<Split> {
        self.inner.splits(parallelism)
    }

    fn create_reader(
        &self,
        splits: Vec<Split>,
        ctx: &OperatorContext,
    ) -> Result<Box<dyn SourceReader>> {
        Ok(Box::new(ComputedReader {
            inner: self.inner.create_reader(splits, ctx)?,
            exprs: self.exprs.clone(),
            schema: self.schema.clone(),
        }))
    }
}

struct ComputedReader {
    inner: Box<dyn SourceReader>,
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    schema: SchemaRef,
}

impl SourceReader for ComputedReader {
    fn poll_next(&mut self) -> Result<SourcePoll> {
        match self.inner.poll_next()? {
            SourcePoll::Batch(batch) => {
                let mut columns = batch.columns().to_vec();
                columns.extend(evaluate(&self.exprs, &batch)?);
                Ok(SourcePoll::Batch(RecordBatch::try_new(
                    self.schema.clone(),
                    columns,
                )?))
            }
            other => Ok(other),
        }
    }

    fn snapshot_positions(&mut self) -> Result<Vec<StateEntry>> {
        self.inner.snapshot_positions()
    }
}
