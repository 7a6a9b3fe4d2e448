//! UNION ALL (and UNION, a SELECT DISTINCT over it, as Flink plans it): every input reshaped to
//! the union's columns and types, all into the one input of a pass-through operator (edges into
//! one input are a union). A changelog among the inputs makes the union a changelog: the
//! append-only inputs' rows become inserts.

use std::sync::Arc;

use datafusion_expr::logical_plan::Union;
use datafusion_expr::{Expr, ExprSchemable};
use spate_api::{ChangelogMode, Operator, Output, changelog_schema};
use spate_graph::Partitioning;

use super::{Stream, Translator, factory};
use crate::error::{SqlError, planning_error};
use crate::exec::{AsInserts, ExprProject};

/// The union itself: its inputs' batches, as they come.
struct PassThrough;

impl Operator for PassThrough {
    fn process_batch(
        &mut self,
        batch: arrow_array::RecordBatch,
        out: &mut Output,
    ) -> spate_api::Result<()> {
        out.batch(batch);
        Ok(())
    }
}

impl Translator<'_> {
    pub(super) fn union(&mut self, union: &Union) -> Result<Stream, SqlError> {
        let inputs = union
            .inputs
            .iter()
            .map(|input| self.translate(input))
            .collect::<Result<Vec<_>, _>>()?;
        let changelog = if inputs.iter().all(|i| i.changelog.is_append_only()) {
            ChangelogMode::AppendOnly
        } else {
            ChangelogMode::Retract
        };
        let planned = Arc::new(union.schema.as_arrow().clone());
        let batches = match changelog {
            ChangelogMode::AppendOnly => planned.clone(),
            _ => changelog_schema(&planned),
        };
        // Operators go into the graph in order: every input's reshaping before the union.
        let mut branches = Vec::with_capacity(inputs.len());
        for input in &inputs {
            branches.push((
                self.union_branch(input, union, &changelog)?,
                input.parallelism,
            ));
        }
        let node = self.graph.add_operator(
            "union all",
            self.parallelism,
            factory(|| PassThrough),
            batches.clone(),
            batches,
        );
        self.graph.nodes[node].changelog = changelog.clone();
        for (branch, parallelism) in branches {
            // A changelog goes by row, so that the changes of one row keep their order.
            let partitioning = if parallelism == self.parallelism {
                Partitioning::Forward
            } else if changelog.is_append_only() {
                Partitioning::Rebalance
            } else {
                Partitioning::Hash(planned.fields().iter().map(|f| f.name().clone()).collect())
            };
            self.graph.connect(branch, node, partitioning);
        }
        let event_time = union_event_time(&inputs, union);
        Ok(Stream {
            node,
            schema: union.schema.clone(),
            parallelism: self.parallelism,
            event_time,
            has_window_end: false,
            window: None,
            updated_by: inputs.iter().find_map(|i| i.updated_by.clone()),
            changelog,
        })
    }

    /// One input as the union's columns (cast to its types), with row kinds when the union is
    /// a changelog.
    fn union_branch(
        &mut self,
        input: &Stream,
        union: &Union,
        changelog: &ChangelogMode,
    ) -> Result<spate_graph::NodeId, SqlError> {
        let planned = Arc::new(union.schema.as_arrow().clone());
        let columns = input.schema.columns();
        let mut exprs = Vec::with_capacity(planned.fields().len());
        for (field, column) in planned.fields().iter().zip(columns) {
            let expr = Expr::Column(column)
                .cast_to(field.data_type(), &input.schema)
                .map_err(planning_error)?;
            exprs.push(self.physical(&expr, &input.schema)?);
        }
        let schema = match input.changelog {
            ChangelogMode::AppendOnly => planned.clone(),
            _ => changelog_schema(&planned),
        };
        let shaped = {
            let schema = schema.clone();
            self.forward(
                input,
                "union input",
                schema.clone(),
                factory(move || ExprProject {
                    exprs: exprs.clone(),
                    schema: schema.clone(),
                }),
            )
        };
        if changelog.is_append_only() || !input.changelog.is_append_only() {
            return Ok(shaped);
        }
        let inserts = changelog_schema(&planned);
        let node = self.graph.add_operator(
            "as inserts",
            input.parallelism,
            factory({
                let schema = inserts.clone();
                move || AsInserts {
                    schema: schema.clone(),
                }
            }),
            planned,
            inserts,
        );
        self.graph.nodes[node].changelog = changelog.clone();
        self.graph.connect(shaped, node, Partitioning::Forward);
        Ok(node)
    }
}

/// The union's event-time attribute: the column that is every input's, if one is.
fn union_event_time(inputs: &[Stream], union: &Union) -> Option<String> {
    let position = |input: &Stream| {
        let time = input.event_time.as_deref()?;
        input.schema.fields().iter().position(|f| f.name() == time)
    };
    let first = position(inputs.first()?)?;
    inputs
        .iter()
        .all(|i| position(i) == Some(first))
        .then(|| union.schema.field(first).name().clone())
}
