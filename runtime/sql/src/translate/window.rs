//! Window aggregation: a GROUP BY on a group window (`TUMBLE`, `HOP`, `SESSION`, or a window
//! table function rewritten to one), and a GROUP BY on the `window_start` and `window_end` of an
//! earlier window aggregation (Flink's cascading window aggregation: Nexmark q5's per-window
//! maximum of per-auction counts). Both become a hash exchange and a window operator, and both
//! emit each result once, when the watermark closes its window.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema};
use datafusion_common::{DFSchema, DFSchemaRef};
use datafusion_expr::expr::{Cast, ScalarFunction};
use datafusion_expr::logical_plan::Aggregate;
use datafusion_expr::{Expr, lit};
use spate_api::{ChangelogMode, Operator, OperatorContext};
use spate_graph::Partitioning;
use spate_operators::window::{WindowAssigner, WindowOperator, WindowSpec};

use super::{Stream, Translator, factory};
use crate::ddl::interval_ms;
use crate::error::{SqlError, planning_error};
use crate::exec::Reshape;

/// The hidden column that carries a window's end next to the aggregate's own columns.
pub(super) const WINDOW_END_COLUMN: &str = "__window_end";

/// The columns of a stream that hold the bounds of the window each row was aggregated in, as
/// long as both survive unchanged (Flink's window properties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowColumns {
    pub start: String,
    pub end: String,
}

/// Where a GROUP BY expression's value comes from in the window operator's output.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    Key,
    WindowStart,
    WindowEnd,
}

/// How one window aggregation is built.
struct Plan {
    assigner: WindowAssigner,
    /// The event time of each row: a column of the group window, or an earlier window's end.
    time: Expr,
    groups: Vec<Group>,
    /// Keep the end aside for `*_END(...)` (group windows only: their end is not a GROUP BY
    /// column).
    hidden_end: bool,
}

impl Translator<'_> {
    /// GROUP BY including `TUMBLE(...)`, `HOP(...)` or `SESSION(...)` at `window_index`.
    pub(super) fn group_window(
        &mut self,
        aggregate: &Aggregate,
        input: Stream,
        window_index: usize,
    ) -> Result<Stream, SqlError> {
        let Expr::ScalarFunction(window) = &aggregate.group_expr[window_index] else {
            unreachable!("the caller found a group window at {window_index}")
        };
        // A window's result is final when it fires: rows taken back later cannot change it.
        if !input.changelog.is_append_only() {
            return Err(self.unsupported(format!(
                "a group window over a changelog ({}, from '{}')",
                input.changelog,
                input.updated_by.as_deref().unwrap_or("?")
            )));
        }
        let assigner = self.assigner(window, &input)?;
        let groups = (0..aggregate.group_expr.len())
            .map(|i| {
                if i == window_index {
                    Group::WindowStart
                } else {
                    Group::Key
                }
            })
            .collect();
        let plan = Plan {
            assigner,
            time: window.args[0].clone(),
            groups,
            hidden_end: true,
        };
        let start = aggregate.schema.field(window_index).name().clone();
        let mut stream = self.window_aggregate(aggregate, input, plan)?;
        stream.window = Some(WindowColumns {
            start,
            end: WINDOW_END_COLUMN.into(),
        });
        Ok(stream)
    }

    /// The GROUP BY positions of the start and end of the windows an earlier window
    /// aggregation made, if this GROUP BY has both and its input (append-only) still has them.
    pub(super) fn grouped_window_columns(
        aggregate: &Aggregate,
        input: &Stream,
    ) -> Option<(usize, usize)> {
        let window = input.window.as_ref()?;
        if !input.changelog.is_append_only() {
            return None;
        }
        let position = |name: &str| {
            aggregate
                .group_expr
                .iter()
                .position(|e| matches!(e, Expr::Column(c) if c.name == name))
        };
        Some((position(&window.start)?, position(&window.end)?))
    }

    /// GROUP BY the start and end of an earlier window aggregation's windows (at `start_index`
    /// and `end_index`): the groups of one earlier window become one window, closed by the
    /// same watermark as that window.
    ///
    /// Each row's window is the one millisecond before its window's end, and the start is one
    /// more key: so every earlier window is one window here, of any shape (hopping windows
    /// overlap, sessions vary in length), and it fires as soon as the earlier one did.
    pub(super) fn window_columns_aggregate(
        &mut self,
        aggregate: &Aggregate,
        input: Stream,
        start_index: usize,
        end_index: usize,
    ) -> Result<Stream, SqlError> {
        let end = aggregate.group_expr[end_index].clone();
        let time = Expr::Cast(Cast::new(Box::new(end), DataType::Int64)) - lit(1i64);
        let groups = (0..aggregate.group_expr.len())
            .map(|i| {
                if i == end_index {
                    Group::WindowEnd
                } else {
                    Group::Key
                }
            })
            .collect();
        let plan = Plan {
            assigner: WindowAssigner::Tumbling { size_ms: 1 },
            time,
            groups,
            hidden_end: false,
        };
        let mut stream = self.window_aggregate(aggregate, input, plan)?;
        stream.window = Some(WindowColumns {
            start: aggregate.schema.field(start_index).name().clone(),
            end: aggregate.schema.field(end_index).name().clone(),
        });
        Ok(stream)
    }

    fn window_aggregate(
        &mut self,
        aggregate: &Aggregate,
        input: Stream,
        plan: Plan,
    ) -> Result<Stream, SqlError> {
        // One projection computes keys, the time column and aggregate arguments as plain columns.
        let mut pre_exprs: Vec<(Expr, String)> = Vec::new();
        let mut keys = Vec::new();
        for (i, expr) in aggregate.group_expr.iter().enumerate() {
            if plan.groups[i] == Group::Key {
                let name = format!("__k{i}");
                keys.push(name.clone());
                pre_exprs.push((expr.clone(), name));
            }
        }
        pre_exprs.push((plan.time, "__ts".into()));
        let specs = self.aggregate_specs(aggregate, &mut pre_exprs)?;
        let (pre, pre_schema) =
            self.pre_project(&input, &pre_exprs, "window keys and arguments")?;

        let assigner = plan.assigner;
        let spec = WindowSpec {
            key_columns: keys.clone(),
            event_time_column: "__ts".into(),
            assigner,
            aggregates: specs,
        };
        let window_schema = spec
            .output_schema(&pre_schema)
            .map_err(|e| self.error(format!("window: {e}")))?;
        // Without keys every row meets in one window operator.
        let (partitioning, parallelism) = if keys.is_empty() {
            (Partitioning::Rebalance, 1)
        } else {
            (Partitioning::Hash(keys.clone()), self.parallelism)
        };
        let make = {
            let (spec, pre_schema) = (spec.clone(), pre_schema.clone());
            move |_: &OperatorContext| -> spate_api::Result<Box<dyn Operator>> {
                Ok(Box::new(WindowOperator::new(
                    spec.clone(),
                    pre_schema.clone(),
                )?))
            }
        };
        let node = self.graph.add_operator(
            format!("window {assigner:?}"),
            parallelism,
            Arc::new(make),
            pre_schema,
            window_schema.clone(),
        );
        self.graph.connect(pre, node, partitioning);
        let window_stream = Stream {
            node,
            schema: Arc::new(
                DFSchema::try_from(window_schema.as_ref().clone()).map_err(planning_error)?,
            ),
            parallelism,
            event_time: None,
            has_window_end: false,
            window: None,
            changelog: ChangelogMode::AppendOnly,
            updated_by: None,
        };

        // Back to the aggregate's own column order and types (with the window end kept aside).
        let output = if plan.hidden_end {
            with_window_end(&aggregate.schema)?
        } else {
            aggregate.schema.clone()
        };
        let out_arrow = Arc::new(output.as_arrow().clone());
        let (start, end) = (keys.len(), keys.len() + 1);
        let mut columns = Vec::new();
        let mut key = 0;
        for group in &plan.groups {
            let from = match group {
                Group::WindowStart => start,
                Group::WindowEnd => end,
                Group::Key => {
                    key += 1;
                    key - 1
                }
            };
            columns.push((from, out_arrow.field(columns.len()).data_type().clone()));
        }
        for i in 0..aggregate.aggr_expr.len() {
            columns.push((
                end + 1 + i,
                out_arrow.field(columns.len()).data_type().clone(),
            ));
        }
        if plan.hidden_end {
            columns.push((end, out_arrow.field(columns.len()).data_type().clone()));
        }
        let node = {
            let schema = out_arrow.clone();
            self.forward(
                &window_stream,
                "window result",
                out_arrow,
                factory(move || Reshape {
                    columns: columns.clone(),
                    schema: schema.clone(),
                }),
            )
        };
        Ok(Stream {
            node,
            schema: output,
            parallelism,
            event_time: None,
            has_window_end: plan.hidden_end,
            window: None,
            changelog: ChangelogMode::AppendOnly,
            updated_by: None,
        })
    }

    fn assigner(
        &self,
        window: &ScalarFunction,
        input: &Stream,
    ) -> Result<WindowAssigner, SqlError> {
        let name = window.func.name().to_uppercase();
        let time = match window.args.first() {
            Some(Expr::Column(c)) if input.event_time.as_deref() == Some(c.name.as_str()) => c,
            other => {
                return Err(self.error(format!(
                    "{name}'s first argument must be the event-time attribute (a column with a WATERMARK{}), got {}",
                    input.event_time.as_ref().map(|t| format!(": '{t}'")).unwrap_or_default(),
                    other.map_or("nothing".into(), |e| e.to_string())
                )));
            }
        };
        let interval = |i: usize| -> Result<i64, SqlError> {
            match window.args.get(i) {
                Some(Expr::Literal(value, _)) => interval_ms(value).filter(|ms| *ms > 0),
                _ => None,
            }
            .ok_or_else(|| {
                self.error(format!(
                    "{name}: argument {} must be a positive INTERVAL of days or less",
                    i + 1
                ))
            })
        };
        let arity = |n: usize| -> Result<(), SqlError> {
            if window.args.len() == n {
                Ok(())
            } else {
                Err(self.error(format!(
                    "{name} takes {n} arguments, got {} (on '{}')",
                    window.args.len(),
                    time.name
                )))
            }
        };
        Ok(match name.as_str() {
            "TUMBLE" => {
                arity(2)?;
                WindowAssigner::Tumbling {
                    size_ms: interval(1)?,
                }
            }
            // Flink's order: HOP(time, slide, size).
            "HOP" => {
                arity(3)?;
                WindowAssigner::Hopping {
                    slide_ms: interval(1)?,
                    size_ms: interval(2)?,
                }
            }
            _ => {
                arity(2)?;
                WindowAssigner::Session {
                    gap_ms: interval(1)?,
                }
            }
        })
    }
}

/// `schema` and the hidden window-end column after its own.
pub(super) fn with_window_end(schema: &DFSchema) -> Result<DFSchemaRef, SqlError> {
    let end = DFSchema::try_from(Schema::new(vec![Field::new(
        WINDOW_END_COLUMN,
        DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, None),
        false,
    )]))
    .map_err(planning_error)?;
    let mut joined = schema.clone();
    joined.merge(&end);
    Ok(Arc::new(joined))
}
