//! A regular join: both inputs hashed by their join keys into one two-input keyed operator
//! (`spate_operators::join`), then what is left of the ON clause as a filter (an inner join's
//! only: an outer join must see every condition to know which rows match nothing). An inner
//! join of two window aggregations on their windows is a window join, whose state holds open
//! windows only.

use std::sync::Arc;

use arrow_schema::{Field, Schema, SchemaRef};
use datafusion_common::{DFSchema, JoinType, NullEquality};
use datafusion_expr::logical_plan::Join;
use datafusion_expr::{Expr, ExprSchemable, LogicalPlan};
use datafusion_optimizer::extract_equijoin_predicate::ExtractEquijoinPredicate;
use datafusion_optimizer::{OptimizerContext, OptimizerRule};
use spate_api::{
    ChangelogMode, Operator, OperatorContext, OperatorFactory, changelog_schema, data_schema,
};
use spate_graph::{NodeId, Partitioning};
use spate_operators::join::{InnerJoin, OuterJoin, OuterSides};
use spate_operators::keyed::{KeyedCoProcessFunction, KeyedCoProcessOperator};

use super::{Stream, Translator, factory};
use crate::error::{SqlError, planning_error};
use crate::exec::{ExprFilter, ExprProject};

/// One input as the join reads it: its columns renamed `__c0..`, then its key expressions as
/// `__k0..`, so that neither a name two inputs share nor a key that is an expression gets in
/// the way.
struct JoinInput {
    node: NodeId,
    schema: SchemaRef,
    keys: Vec<String>,
}

impl Translator<'_> {
    pub(super) fn join(&mut self, join: &Join) -> Result<Stream, SqlError> {
        // The SQL planner leaves the whole ON clause in `filter`; DataFusion's rule moves its
        // equalities between the two sides into `on`, the join keys.
        let extracted = ExtractEquijoinPredicate::new()
            .rewrite(LogicalPlan::Join(join.clone()), &OptimizerContext::new())
            .map_err(planning_error)?
            .data;
        let LogicalPlan::Join(join) = &extracted else {
            return Err(self.error("JOIN: the join's conditions could not be read"));
        };
        let outer = match join.join_type {
            JoinType::Inner => None,
            JoinType::Left => Some(OuterSides::Left),
            JoinType::Right => Some(OuterSides::Right),
            JoinType::Full => Some(OuterSides::Both),
            _ => return Err(self.unsupported("a semi or anti join (IN, EXISTS)")),
        };
        if let (Some(outer), Some(condition)) = (outer, &join.filter) {
            let kind = match outer {
                OuterSides::Left => "LEFT JOIN",
                OuterSides::Right => "RIGHT JOIN",
                OuterSides::Both => "FULL OUTER JOIN",
            };
            return Err(self.unsupported(format!(
                "{kind} with ON conditions other than equalities between its two sides ({condition})"
            )));
        }
        if join.on.is_empty() {
            return Err(self.unsupported(
                "a join without an equality between columns of its two sides (a cross join)",
            ));
        }
        if join.null_equality == NullEquality::NullEqualsNull {
            return Err(self.unsupported("a join whose keys match NULL to NULL"));
        }
        let left = self.translate(&join.left)?;
        let right = self.translate(&join.right)?;
        let left_input = self.join_input(&left, join.on.iter().map(|(l, _)| l))?;
        let right_input = self.join_input(&right, join.on.iter().map(|(_, r)| r))?;

        // The inner join of inserts is inserts; a retraction on either side retracts joined
        // rows, and an outer join takes its padded rows back when they find a match.
        let changelog = match (&left.changelog, &right.changelog, outer) {
            (ChangelogMode::AppendOnly, ChangelogMode::AppendOnly, None) => {
                ChangelogMode::AppendOnly
            }
            _ => ChangelogMode::Retract,
        };
        let keys = join.on.len();
        let (left_data, right_data) = (
            data_schema(&left_input.schema),
            data_schema(&right_input.schema),
        );
        // Equal keys must encode alike on both sides, so they must have one type.
        for (i, (l, r)) in join.on.iter().enumerate() {
            let field = |schema: &Schema| schema.field(schema.fields().len() - keys + i).clone();
            let (lf, rf) = (field(&left_data), field(&right_data));
            if lf.data_type() != rf.data_type() {
                return Err(self.error(format!(
                    "JOIN: {l} = {r} compares {} with {}; cast one side to the other's type",
                    lf.data_type(),
                    rf.data_type()
                )));
            }
        }
        let retracts = !changelog.is_append_only();
        let planned = Arc::new(join.schema.as_arrow().clone());
        let inputs = (
            (left_input.keys.clone(), left_input.schema.clone()),
            (right_input.keys.clone(), right_input.schema.clone()),
        );
        let window_end = match outer {
            None => window_join_key(join, &left, &right),
            Some(_) => None,
        };
        let (output, make) = match (outer, window_end) {
            (None, Some(end_key)) => co_process(inputs, move || {
                InnerJoin::window(&left_data, &right_data, keys, &planned, end_key)
            }),
            (None, None) => co_process(inputs, move || {
                InnerJoin::new(&left_data, &right_data, keys, &planned, retracts)
            }),
            (Some(outer), _) => co_process(inputs, move || {
                OuterJoin::new(&left_data, &right_data, keys, &planned, outer)
            }),
        }
        .map_err(|e| self.error(format!("JOIN: {e}")))?;
        let conditions: Vec<String> = join.on.iter().map(|(l, r)| format!("{l} = {r}")).collect();
        let kind = if window_end.is_some() {
            "window join"
        } else {
            "join"
        };
        let name = format!("{kind} on {}", conditions.join(" AND "));
        let node = self.graph.add_multi_input_operator(
            name.clone(),
            self.parallelism,
            make,
            vec![left_input.schema.clone(), right_input.schema.clone()],
            output,
        );
        self.graph.nodes[node].changelog = changelog.clone();
        self.graph.connect_to_input(
            left_input.node,
            node,
            0,
            Partitioning::Hash(left_input.keys),
        );
        self.graph.connect_to_input(
            right_input.node,
            node,
            1,
            Partitioning::Hash(right_input.keys),
        );
        let joined = Stream {
            node,
            schema: join.schema.clone(),
            parallelism: self.parallelism,
            // Flink too: a regular join's output has no time attribute.
            event_time: None,
            has_window_end: false,
            window: None,
            changelog,
            updated_by: left.updated_by.or(right.updated_by),
        };
        match &join.filter {
            None => Ok(joined),
            Some(condition) => {
                let predicate = self.physical(condition, &joined.schema)?;
                let node = self.forward(
                    &joined,
                    "join condition",
                    joined.arrow(),
                    factory(move || ExprFilter {
                        predicate: predicate.clone(),
                    }),
                );
                Ok(Stream { node, ..joined })
            }
        }
    }

    fn join_input<'e>(
        &mut self,
        input: &Stream,
        keys: impl Iterator<Item = &'e Expr>,
    ) -> Result<JoinInput, SqlError> {
        if input.has_window_end {
            return Err(self.unsupported("a join of a group window's result"));
        }
        let mut fields = Vec::new();
        let mut exprs = Vec::new();
        let columns = input.schema.columns().into_iter().map(Expr::Column);
        for (i, expr) in columns.enumerate() {
            fields.push(self.join_field(&expr, &input.schema, format!("__c{i}"))?);
            exprs.push(self.physical(&expr, &input.schema)?);
        }
        let mut names = Vec::new();
        for (i, expr) in keys.enumerate() {
            let name = format!("__k{i}");
            fields.push(self.join_field(expr, &input.schema, name.clone())?);
            exprs.push(self.physical(expr, &input.schema)?);
            names.push(name);
        }
        let data = Schema::new(fields);
        // A changelog's projection passes its row kinds on (see ExprProject).
        let schema = match input.changelog {
            ChangelogMode::AppendOnly => Arc::new(data),
            _ => changelog_schema(&data),
        };
        let node = {
            let schema = schema.clone();
            self.forward(
                input,
                "join input",
                schema.clone(),
                factory(move || ExprProject {
                    exprs: exprs.clone(),
                    schema: schema.clone(),
                }),
            )
        };
        Ok(JoinInput {
            node,
            schema,
            keys: names,
        })
    }

    fn join_field(&self, expr: &Expr, schema: &DFSchema, name: String) -> Result<Field, SqlError> {
        let (_, field) = expr.to_field(schema).map_err(planning_error)?;
        Ok(Field::new(
            name,
            field.data_type().clone(),
            field.is_nullable(),
        ))
    }
}

/// The join key that is the window end, when this is a window join (Flink's rule): an inner
/// join of two window aggregations' results, append-only, on equal window starts and ends.
fn window_join_key(join: &Join, left: &Stream, right: &Stream) -> Option<usize> {
    let (l, r) = (left.window.as_ref()?, right.window.as_ref()?);
    if !left.changelog.is_append_only() || !right.changelog.is_append_only() {
        return None;
    }
    let equal = |a: &str, b: &str| {
        join.on.iter().position(|(x, y)| {
            matches!((x, y), (Expr::Column(x), Expr::Column(y)) if x.name == a && y.name == b)
        })
    };
    equal(&l.start, &r.start)?;
    equal(&l.end, &r.end)
}

/// The output schema of the two-input keyed function `make` builds, and a factory of operators
/// running it on `inputs` (each input's key columns and schema). `make` runs once here, so a
/// mistake is a planning error.
fn co_process<F: KeyedCoProcessFunction + 'static>(
    inputs: ((Vec<String>, SchemaRef), (Vec<String>, SchemaRef)),
    make: impl Fn() -> spate_api::Result<F> + Send + Sync + 'static,
) -> spate_api::Result<(SchemaRef, Arc<dyn OperatorFactory>)> {
    let output = make()?.output_schema();
    let factory: Arc<dyn OperatorFactory> = Arc::new(
        move |_: &OperatorContext| -> spate_api::Result<Box<dyn Operator>> {
            let (first, second) = inputs.clone();
            Ok(Box::new(KeyedCoProcessOperator::new(
                make()?,
                first,
                second,
            )?))
        },
    );
    Ok((output, factory))
}
