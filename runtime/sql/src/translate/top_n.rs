//! Top-N and deduplication (Flink's Rank): `ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...)`
//! under a WHERE that keeps its first N numbers becomes a hash exchange by the partition keys
//! into one keyed operator that keeps each key's best N rows (`spate_operators::top_n`).

use std::sync::Arc;

use arrow_schema::{DataType, SortOptions};
use datafusion_common::{Column, ScalarValue};
use datafusion_expr::logical_plan::{Filter, Window};
use datafusion_expr::{BinaryExpr, Expr, LogicalPlan, Operator as Comparison};
use spate_api::{ChangelogMode, Operator, OperatorContext};
use spate_graph::Partitioning;
use spate_operators::keyed::{KeyedProcessFunction, KeyedProcessOperator};
use spate_operators::top_n::{SortColumn, TopN};

use super::{Stream, Translator};
use crate::error::SqlError;

/// A Top-N a filter asked for: the window node below it (by address, while the plan is being
/// translated) and how many numbers the filter keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopNLimit {
    window: usize,
    limit: usize,
}

impl Translator<'_> {
    /// If `filter` keeps the first N row numbers of a ROW_NUMBER() below it (through aliases
    /// and projections that pass the number on), the limit for that window.
    pub(super) fn top_n_limit(filter: &Filter) -> Option<TopNLimit> {
        let (column, limit) = rank_bound(&filter.predicate)?;
        let window = row_number_below(&filter.input, &column)?;
        Some(TopNLimit {
            window: std::ptr::from_ref(window) as usize,
            limit,
        })
    }

    pub(super) fn window(&mut self, window: &Window) -> Result<Stream, SqlError> {
        let limit = match self.pending_top_n.take() {
            Some(top) if top.window == std::ptr::from_ref(window) as usize => top.limit,
            _ => {
                return Err(self.unsupported(
                    "OVER windows (of them, ROW_NUMBER() runs under a WHERE that keeps its first \
                     numbers: rn <= N, rn < N or rn = 1, a Top-N)",
                ));
            }
        };
        let Some(Expr::WindowFunction(function)) =
            window.window_expr.first().map(|e| e.clone().unalias())
        else {
            return Err(self.error("Top-N: the window function could not be read"));
        };
        let params = &function.params;
        if params.order_by.is_empty() {
            return Err(self.unsupported("ROW_NUMBER() without ORDER BY"));
        }
        let input = self.translate(&window.input)?;
        if !input.changelog.is_append_only() {
            return Err(self.unsupported(format!(
                "a Top-N over a changelog ({}, from '{}')",
                input.changelog,
                input.updated_by.as_deref().unwrap_or("?")
            )));
        }
        if input.has_window_end {
            return Err(self.unsupported("a Top-N of a group window's result (window Top-N)"));
        }

        // The input's columns, then the ORDER BY values, then the PARTITION BY keys.
        let mut exprs: Vec<(Expr, String)> = input
            .schema
            .columns()
            .into_iter()
            .enumerate()
            .map(|(i, column)| (Expr::Column(column), format!("__c{i}")))
            .collect();
        let width = exprs.len();
        let mut order = Vec::new();
        for (i, sort) in params.order_by.iter().enumerate() {
            exprs.push((sort.expr.clone(), format!("__s{i}")));
            order.push(SortColumn {
                column: width + i,
                options: SortOptions {
                    descending: !sort.asc,
                    nulls_first: sort.nulls_first,
                },
            });
        }
        let mut keys = Vec::new();
        for (i, key) in params.partition_by.iter().enumerate() {
            let name = format!("__k{i}");
            exprs.push((key.clone(), name.clone()));
            keys.push(name);
        }
        // Without PARTITION BY one subtask ranks every row.
        let parallelism = if keys.is_empty() {
            keys.push("__all".into());
            exprs.push((datafusion_expr::lit(0i64), "__all".into()));
            1
        } else {
            self.parallelism
        };
        let (pre, pre_schema) = self.pre_project(&input, &exprs, "Top-N keys and order")?;
        let output = Arc::new(window.schema.as_arrow().clone());
        let changes = TopN::new(&pre_schema, &order, limit, &output)
            .map_err(|e| self.error(format!("Top-N: {e}")))?
            .output_schema();
        let make = {
            let (keys, pre_schema) = (keys.clone(), pre_schema.clone());
            move |_: &OperatorContext| -> spate_api::Result<Box<dyn Operator>> {
                let function = TopN::new(&pre_schema, &order, limit, &output)?;
                Ok(Box::new(KeyedProcessOperator::new(
                    function,
                    keys.clone(),
                    pre_schema.clone(),
                )?))
            }
        };
        let sorts: Vec<String> = params.order_by.iter().map(ToString::to_string).collect();
        let name = format!("Top-{limit} by {}", sorts.join(", "));
        let node = self.graph.add_operator(
            name.clone(),
            parallelism,
            Arc::new(make),
            pre_schema,
            changes,
        );
        self.graph.nodes[node].changelog = ChangelogMode::Retract;
        self.graph.connect(pre, node, Partitioning::Hash(keys));
        Ok(Stream {
            node,
            schema: window.schema.clone(),
            parallelism,
            event_time: None,
            has_window_end: false,
            window: None,
            changelog: ChangelogMode::Retract,
            updated_by: Some(name),
        })
    }
}

/// `rn <= N`, `rn < N` or `rn = 1` (either way round): the column and how many numbers it keeps.
fn rank_bound(predicate: &Expr) -> Option<(Column, usize)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = predicate else {
        return None;
    };
    let (column, op, value) = match (uncast(left), uncast(right)) {
        (Expr::Column(column), Expr::Literal(value, _)) => (column, *op, value),
        (Expr::Literal(value, _), Expr::Column(column)) => (column, op.swap()?, value),
        _ => return None,
    };
    let ScalarValue::Int64(Some(n)) = value.cast_to(&DataType::Int64).ok()? else {
        return None;
    };
    let limit = match op {
        Comparison::LtEq => n,
        Comparison::Lt => n - 1,
        Comparison::Eq if n == 1 => 1,
        _ => return None,
    };
    (limit >= 1).then(|| (column.clone(), limit as usize))
}

fn uncast(expr: &Expr) -> &Expr {
    match expr {
        Expr::Cast(cast) => uncast(&cast.expr),
        Expr::TryCast(cast) => uncast(&cast.expr),
        other => other,
    }
}

/// The window below `plan` whose only function, ROW_NUMBER(), gives `column`.
fn row_number_below<'p>(mut plan: &'p LogicalPlan, column: &Column) -> Option<&'p Window> {
    let mut name = column.name.clone();
    loop {
        match plan {
            LogicalPlan::SubqueryAlias(alias) => plan = &alias.input,
            LogicalPlan::Projection(projection) => {
                let at = projection
                    .schema
                    .fields()
                    .iter()
                    .position(|f| *f.name() == name)?;
                let Expr::Column(passed) = projection.expr.get(at)?.clone().unalias() else {
                    return None;
                };
                name = passed.name;
                plan = &projection.input;
            }
            LogicalPlan::Window(window) => {
                let at = window
                    .schema
                    .fields()
                    .iter()
                    .position(|f| *f.name() == name)?;
                let first = window.input.schema().fields().len();
                let [function] = window.window_expr.as_slice() else {
                    return None;
                };
                let is_row_number = matches!(
                    function.clone().unalias(),
                    Expr::WindowFunction(f) if f.fun.name() == "row_number"
                );
                return (at >= first && is_row_number).then_some(window);
            }
            _ => return None,
        }
    }
}
