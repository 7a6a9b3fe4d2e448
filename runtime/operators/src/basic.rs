//! Stateless operators: user functions over whole batches.

use std::sync::Arc;

use arrow_array::{BooleanArray, RecordBatch};
use arrow_schema::{Schema, SchemaRef};
use arrow_select::filter::filter_record_batch;
use spate_api::{Operator, OperatorError, Output, Result};

pub type MapFn = Arc<dyn Fn(RecordBatch) -> Result<RecordBatch> + Send + Sync>;
pub type FlatMapFn = Arc<dyn Fn(RecordBatch) -> Result<Vec<RecordBatch>> + Send + Sync>;
pub type PredicateFn = Arc<dyn Fn(&RecordBatch) -> Result<BooleanArray> + Send + Sync>;

/// Checks what a user function returned against the schema it declared, since every operator
/// downstream was built for the declared one.
fn check_schema(batch: &RecordBatch, declared: &Schema) -> Result<()> {
    if batch.schema().fields() != declared.fields() {
        return Err(OperatorError::invalid(format!(
            "the function returned columns {:?} but declared {:?}",
            batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>(),
            declared
                .fields()
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
        )));
    }
    Ok(())
}

pub struct MapOperator {
    function: MapFn,
    output: SchemaRef,
}

impl MapOperator {
    pub fn new(function: MapFn, output: SchemaRef) -> Self {
        MapOperator { function, output }
    }
}

impl Operator for MapOperator {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Output) -> Result<()> {
        let mapped = (self.function)(batch)?;
        check_schema(&mapped, &self.output)?;
        out.batch(mapped);
        Ok(())
    }
}

pub struct FlatMapOperator {
    function: FlatMapFn,
    output: SchemaRef,
}

impl FlatMapOperator {
    pub fn new(function: FlatMapFn, output: SchemaRef) -> Self {
        FlatMapOperator { function, output }
    }
}

impl Operator for FlatMapOperator {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Output) -> Result<()> {
        for produced in (self.function)(batch)? {
            check_schema(&produced, &self.output)?;
            out.batch(produced);
        }
        Ok(())
    }
}

pub struct FilterOperator {
    predicate: PredicateFn,
}

impl FilterOperator {
    pub fn new(predicate: PredicateFn) -> Self {
        FilterOperator { predicate }
    }
}

impl Operator for FilterOperator {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Output) -> Result<()> {
        let keep = (self.predicate)(&batch)?;
        if keep.len() != batch.num_rows() {
            return Err(OperatorError::invalid(format!(
                "the predicate returned {} values for {} rows",
                keep.len(),
                batch.num_rows()
            )));
        }
        if keep.true_count() == batch.num_rows() {
            out.batch(batch);
        } else {
            out.batch(filter_record_batch(&batch, &keep)?);
        }
        Ok(())
    }
}

/// Keeps the named columns, in the given order.
pub struct ProjectOperator {
    indices: Vec<usize>,
}

impl ProjectOperator {
    /// Resolves the columns against the input; returns the operator and its output schema.
    pub fn new(input: &Schema, columns: &[String]) -> Result<(Self, SchemaRef)> {
        let indices = columns
            .iter()
            .map(|c| {
                input.index_of(c).map_err(|_| {
                    OperatorError::invalid(format!("project: column '{c}' is not in the input"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let schema = Arc::new(input.project(&indices)?);
        Ok((ProjectOperator { indices }, schema))
    }
}

impl Operator for ProjectOperator {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Output) -> Result<()> {
        out.batch(batch.project(&self.indices)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Int64Array};
    use arrow_schema::{DataType, Field};
    use spate_api::StreamElement;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
                Arc::new(Int64Array::from(vec![10, 20, 30, 40])),
            ],
        )
        .unwrap()
    }

    fn only_batch(out: &mut Output) -> RecordBatch {
        match out.drain().next() {
            Some(StreamElement::Batch(b)) => b,
            other => panic!("expected a batch, got {other:?}"),
        }
    }

    #[test]
    fn filter_keeps_matching_rows_and_project_reorders() {
        let mut filter = FilterOperator::new(Arc::new(|b: &RecordBatch| {
            let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            Ok(a.iter().map(|v| v.map(|v| v % 2 == 0)).collect())
        }));
        let mut out = Output::default();
        filter.process_batch(batch(), &mut out).unwrap();
        let kept = only_batch(&mut out);
        assert_eq!(kept.num_rows(), 2);

        let (mut project, schema) =
            ProjectOperator::new(&kept.schema(), &["b".into(), "a".into()]).unwrap();
        project.process_batch(kept, &mut out).unwrap();
        let projected = only_batch(&mut out);
        assert_eq!(projected.schema(), schema);
        assert_eq!(
            projected.column(0).as_ref(),
            &Int64Array::from(vec![20, 40]) as &dyn Array
        );
    }

    #[test]
    fn a_map_that_breaks_its_declared_schema_is_an_error() {
        let declared = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let mut map = MapOperator::new(Arc::new(Ok), declared);
        let err = map
            .process_batch(batch(), &mut Output::default())
            .unwrap_err();
        assert!(err.to_string().contains("declared"), "{err}");
        let err = ProjectOperator::new(&batch().schema(), &["zz".into()])
            .err()
            .unwrap();
        assert!(err.to_string().contains("'zz'"), "{err}");
    }
}
