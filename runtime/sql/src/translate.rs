//! DataFusion logical plans to Spate stream-graph nodes. Each supported plan node becomes an
//! operator; a GROUP BY on a group window becomes a hash exchange and a window operator; anything
//! a stream cannot do yet is refused by name.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use datafusion_common::tree_node::{Transformed, TreeNode};
use datafusion_common::{Column, DFSchema, DFSchemaRef, JoinType};
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::expr::{AggregateFunction as AggregateCall, ScalarFunction};
use datafusion_expr::logical_plan::{Aggregate, Distinct, Filter, Projection, TableScan};
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_expr::{Expr, ExprSchemable, LogicalPlan};
use datafusion_physical_expr::{PhysicalExpr, create_physical_expr};
use spate_api::{
    ChangelogMode, Operator, OperatorContext, OperatorFactory, WatermarkStrategy, changelog_schema,
    row_kind_index, upsert_schema,
};
use spate_connectors::{TableContext, TableOptions};

use crate::connectors::connector;
use spate_graph::{NodeId, Partitioning, StreamGraph};
use spate_operators::group_aggregate::GroupAggregate;
use spate_operators::keyed::{KeyedProcessFunction, KeyedProcessOperator};
use spate_operators::window::{AggregateFunction, AggregateSpec};

mod join;
mod top_n;
mod union;
mod upsert;
mod window;

pub use top_n::TopNLimit;
pub use window::WindowColumns;
use window::{WINDOW_END_COLUMN, with_window_end};

use crate::catalog::DeclaredTable;
use crate::ddl::TableDef;
use crate::error::{Position, SqlError, planning_error};
use crate::exec::{ComputedSource, ExprFilter, ExprProject, Reshape};
use crate::functions::{GROUP_WINDOWS, WINDOW_END};
use crate::types::writes_into;

/// The output of a translated plan node.
#[derive(Clone)]
pub struct Stream {
    pub node: NodeId,
    /// The plan's schema (qualified names), plus hidden columns the plan does not show.
    pub schema: DFSchemaRef,
    pub parallelism: u32,
    /// The event-time attribute: a column with watermarks, as long as it survives unchanged.
    pub event_time: Option<String>,
    /// Set on the output of a group window: `*_END(...)` reads the hidden end column.
    pub has_window_end: bool,
    /// The bounds of the windows rows were aggregated in, while they survive unchanged: a
    /// GROUP BY on both is a window aggregation again.
    pub window: Option<WindowColumns>,
    /// The kinds of rows the stream carries; a changelog's batches end in the row-kind column,
    /// which `schema` does not show.
    pub changelog: ChangelogMode,
    /// The operator that turned the stream into a changelog, for errors that name it.
    pub updated_by: Option<String>,
}

impl Stream {
    /// The batches' schema: the plan's columns, and the row kinds of a changelog.
    pub fn arrow(&self) -> SchemaRef {
        let plan = self.schema.as_arrow();
        match self.changelog {
            ChangelogMode::AppendOnly => Arc::new(plan.clone()),
            _ => changelog_schema(plan),
        }
    }
}

pub struct Translator<'a> {
    pub graph: &'a mut StreamGraph,
    pub parallelism: u32,
    /// Where the statement being translated starts, for errors that have no position of their own.
    pub position: Position,
    /// The Top-N a filter found below it, for the window node to take.
    pub pending_top_n: Option<TopNLimit>,
}

fn factory<O: Operator + 'static>(
    make: impl Fn() -> O + Send + Sync + 'static,
) -> Arc<dyn OperatorFactory> {
    Arc::new(
        move |_: &OperatorContext| -> spate_api::Result<Box<dyn Operator>> { Ok(Box::new(make())) },
    )
}

impl Translator<'_> {
    fn error(&self, message: impl Into<String>) -> SqlError {
        SqlError::at(self.position, message)
    }

    fn unsupported(&self, what: impl std::fmt::Display) -> SqlError {
        SqlError::unsupported(Some(self.position), what)
    }

    fn physical(&self, expr: &Expr, schema: &DFSchema) -> Result<Arc<dyn PhysicalExpr>, SqlError> {
        create_physical_expr(
            expr,
            schema,
            &ExecutionProps::new(),
            &PhysicalPlanningContext::default(),
        )
        .map_err(|e| planning_error(e).or_at(self.position))
    }

    /// Adds an operator reading `input` through a forward edge (chained into its task).
    fn forward(
        &mut self,
        input: &Stream,
        name: &str,
        output: SchemaRef,
        factory: Arc<dyn OperatorFactory>,
    ) -> NodeId {
        let keeps_row_kinds = row_kind_index(&output).is_some();
        let node = self
            .graph
            .add_operator(name, input.parallelism, factory, input.arrow(), output);
        if keeps_row_kinds {
            self.graph.nodes[node].changelog = input.changelog.clone();
        }
        self.graph.connect(input.node, node, Partitioning::Forward);
        node
    }

    pub fn translate(&mut self, plan: &LogicalPlan) -> Result<Stream, SqlError> {
        match plan {
            LogicalPlan::TableScan(scan) => self.scan(scan),
            LogicalPlan::Projection(projection) => self.projection(projection),
            LogicalPlan::Filter(filter) => self.filter(filter),
            LogicalPlan::SubqueryAlias(alias) => {
                let mut stream = self.translate(&alias.input)?;
                stream.schema = if stream.has_window_end {
                    with_window_end(&alias.schema)?
                } else {
                    alias.schema.clone()
                };
                Ok(stream)
            }
            LogicalPlan::Aggregate(aggregate) => self.aggregate(aggregate),
            LogicalPlan::Join(join) => self.join(join),
            LogicalPlan::Union(union) => self.union(union),
            LogicalPlan::Sort(_) => Err(self.unsupported("ORDER BY on an unbounded stream")),
            LogicalPlan::Limit(_) => Err(self.unsupported("LIMIT on an unbounded stream")),
            LogicalPlan::Distinct(Distinct::All(input)) => {
                // Flink plans SELECT DISTINCT as a group aggregate by every column.
                let columns = input.schema().columns().into_iter().map(Expr::Column);
                let by_all = Aggregate::try_new(input.clone(), columns.collect(), Vec::new())
                    .map_err(planning_error)?;
                self.aggregate(&by_all)
            }
            LogicalPlan::Distinct(Distinct::On(_)) => Err(self.unsupported("DISTINCT ON")),
            LogicalPlan::Window(window) => self.window(window),
            LogicalPlan::Values(_) | LogicalPlan::EmptyRelation(_) => {
                Err(self.unsupported("a query without a source table"))
            }
            other => Err(self.unsupported(format!("this kind of query ({})", other.display()))),
        }
    }

    fn scan(&mut self, scan: &TableScan) -> Result<Stream, SqlError> {
        let table = scan
            .source
            .downcast_ref::<DeclaredTable>()
            .ok_or_else(|| self.error(format!("'{}' is not a declared table", scan.table_name)))?;
        let def = table.0.clone();
        let (source, mode) = self.source(&def)?;
        // A source of changes hands over the physical columns and the row kinds; computed
        // columns and watermarks would be computed over changes, which is not planned yet.
        if !mode.is_append_only() && (!def.computed.is_empty() || def.watermark.is_some()) {
            return Err(SqlError::unsupported(
                Some(def.position),
                format!(
                    "table '{}': computed columns or a WATERMARK on a table of changes \
                     (connector '{}' reads it as a {mode} changelog)",
                    def.name, def.connector
                ),
            ));
        }
        let watermarks = def
            .watermark
            .as_ref()
            .map(|(column, bound)| WatermarkStrategy::bounded_out_of_orderness(column, *bound));
        let schema = match &mode {
            ChangelogMode::AppendOnly => def.schema.clone(),
            ChangelogMode::Upsert { key } => upsert_schema(&def.schema, key),
            ChangelogMode::Retract => changelog_schema(&def.schema),
        };
        let mut node = self.graph.add_source(
            def.name.clone(),
            self.parallelism,
            source,
            schema,
            watermarks,
        );
        let (changelog, updated_by) = match mode {
            ChangelogMode::AppendOnly => (ChangelogMode::AppendOnly, None),
            ChangelogMode::Upsert { key } => {
                self.graph.nodes[node].changelog = ChangelogMode::Upsert { key: key.clone() };
                node = self.normalize_upserts(node, &def, &key);
                let by = self.graph.nodes[node].name.clone();
                (ChangelogMode::Retract, Some(by))
            }
            ChangelogMode::Retract => {
                self.graph.nodes[node].changelog = ChangelogMode::Retract;
                (ChangelogMode::Retract, Some(def.name.clone()))
            }
        };
        let full = DFSchema::try_from_qualified_schema(scan.table_name.clone(), &def.schema)
            .map_err(planning_error)?;
        let stream = Stream {
            node,
            schema: Arc::new(full),
            parallelism: self.parallelism,
            event_time: def.watermark.as_ref().map(|(c, _)| c.clone()),
            has_window_end: false,
            window: None,
            changelog,
            updated_by,
        };
        match &scan.projection {
            None => Ok(stream),
            Some(indices) => {
                let exprs = indices
                    .iter()
                    .map(|&i| Expr::Column(Column::from(stream.schema.qualified_field(i))))
                    .collect();
                self.project(stream, exprs, scan.projected_schema.clone())
            }
        }
    }

    /// The table's source, and the changes it produces.
    fn source(
        &self,
        def: &TableDef,
    ) -> Result<(Arc<dyn spate_api::SourceFactory>, ChangelogMode), SqlError> {
        let at = |e: spate_connectors::ConnectorError| SqlError::at(def.position, e.to_string());
        let connector = connector(&def.connector, &def.name).map_err(at)?;
        connector
            .primary_key(&def.name, &def.primary_key)
            .map_err(at)?;
        let mut options = TableOptions::new(&def.name, def.options.clone());
        let mode = connector
            .source_changelog(&options, &def.primary_key)
            .map_err(at)?;
        let source = connector
            .source(TableContext {
                table: &def.name,
                schema: def.physical.clone(),
                options: &mut options,
                primary_key: &def.primary_key,
            })
            .map_err(at)?;
        if def.computed.is_empty() {
            return Ok((source, mode));
        }
        let physical = DFSchema::try_from_qualified_schema(def.name.as_str(), &def.physical)
            .map_err(planning_error)?;
        let exprs = def
            .computed
            .iter()
            .map(|expr| self.physical(expr, &physical))
            .collect::<Result<Vec<_>, _>>()?;
        let computed = ComputedSource {
            inner: source,
            exprs,
            schema: def.schema.clone(),
        };
        Ok((Arc::new(computed), mode))
    }

    pub fn sink(&mut self, input: Stream, def: &TableDef) -> Result<(), SqlError> {
        let at = |e: spate_connectors::ConnectorError| SqlError::at(def.position, e.to_string());
        let connector = connector(&def.connector, &def.name).map_err(at)?;
        connector
            .primary_key(&def.name, &def.primary_key)
            .map_err(at)?;
        let taken = connector
            .sink_changelog(
                &TableOptions::new(&def.name, def.options.clone()),
                &def.primary_key,
            )
            .map_err(at)?;
        if !input.changelog.is_append_only() && taken.is_append_only() {
            return Err(self.error(format!(
                "INSERT INTO {}: the table's connector '{}' takes inserts only, but '{}' in the \
                 query updates its results (a {} changelog); write into a table whose \
                 connector takes changes (upsert-kafka, print, blackhole, filesystem with \
                 'format' = 'debezium-json')",
                def.name,
                connector.name(),
                input.updated_by.as_deref().unwrap_or("?"),
                input.changelog
            )));
        }
        let mut options = TableOptions::new(&def.name, def.options.clone());
        let sink = connector
            .sink(TableContext {
                table: &def.name,
                schema: def.physical.clone(),
                options: &mut options,
                primary_key: &def.primary_key,
            })
            .map_err(|e| SqlError::at(def.position, e.to_string()))?;
        let produced = input.arrow();
        let visible = input.schema.fields().len() - usize::from(input.has_window_end);
        let wanted = &def.physical;
        if visible != wanted.fields().len() {
            return Err(self.error(format!(
                "INSERT INTO {}: the query produces {visible} column(s) but the table has {} ({})",
                def.name,
                wanted.fields().len(),
                wanted
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut columns = Vec::new();
        for (i, target) in wanted.fields().iter().enumerate() {
            let from = produced.field(i).data_type();
            // Flink refuses what it cannot cast implicitly; casting anyway would turn every
            // value that does not parse into NULL.
            if !writes_into(from, target.data_type()) {
                return Err(self.error(format!(
                    "INSERT INTO {}: column {} ('{}') is {from} in the query, which Flink does \
                     not write into a {} column (CAST it in the query)",
                    def.name,
                    i + 1,
                    target.name(),
                    target.data_type()
                )));
            }
            columns.push((i, target.data_type().clone()));
        }
        let schema = match input.changelog {
            ChangelogMode::AppendOnly => wanted.clone(),
            _ => {
                columns.push((produced.fields().len() - 1, DataType::UInt8));
                changelog_schema(wanted)
            }
        };
        let shaped = {
            let schema = schema.clone();
            self.forward(
                &input,
                "to sink columns",
                schema.clone(),
                factory(move || Reshape {
                    columns: columns.clone(),
                    schema: schema.clone(),
                }),
            )
        };
        let (feeding, partitioning, mode) = match &taken {
            ChangelogMode::Upsert { key } => {
                let (node, mode) = self.upserts_into_sink(
                    shaped,
                    &input.changelog,
                    schema.clone(),
                    input.parallelism,
                    key,
                );
                (node, Partitioning::Hash(key.clone()), mode)
            }
            _ => (shaped, Partitioning::Forward, input.changelog),
        };
        let node = self.graph.add_operator(
            format!("sink: {}", def.name),
            input.parallelism,
            sink,
            schema.clone(),
            schema,
        );
        self.graph.nodes[node].changelog = mode;
        self.graph.connect(feeding, node, partitioning);
        Ok(())
    }

    fn project(
        &mut self,
        input: Stream,
        exprs: Vec<Expr>,
        output: DFSchemaRef,
    ) -> Result<Stream, SqlError> {
        // Which output column passes an input column on unchanged.
        let passed_on = |name: &str| {
            exprs
                .iter()
                .position(|e| matches!(e.clone().unalias(), Expr::Column(c) if c.name == name))
                .map(|i| output.field(i).name().clone())
        };
        let event_time = input.event_time.as_deref().and_then(passed_on);
        let window = input.window.as_ref().and_then(|w| {
            Some(WindowColumns {
                start: passed_on(&w.start)?,
                end: passed_on(&w.end)?,
            })
        });
        let physical = exprs
            .iter()
            .map(|e| self.physical(e, &input.schema))
            .collect::<Result<Vec<_>, _>>()?;
        let arrow = Arc::new(output.as_arrow().clone());
        // A changelog's projection passes the row kinds on (see ExprProject).
        let batches = match input.changelog {
            ChangelogMode::AppendOnly => arrow.clone(),
            _ => changelog_schema(&arrow),
        };
        let node = {
            let schema = batches.clone();
            self.forward(
                &input,
                "project",
                batches,
                factory(move || ExprProject {
                    exprs: physical.clone(),
                    schema: schema.clone(),
                }),
            )
        };
        Ok(Stream {
            node,
            event_time,
            schema: output,
            parallelism: input.parallelism,
            has_window_end: false,
            window,
            changelog: input.changelog,
            updated_by: input.updated_by,
        })
    }

    fn projection(&mut self, projection: &Projection) -> Result<Stream, SqlError> {
        let input = self.translate(&projection.input)?;
        let mut exprs = Vec::with_capacity(projection.expr.len());
        for expr in &projection.expr {
            exprs.push(self.window_end_reference(expr, input.has_window_end)?);
        }
        self.project(input, exprs, projection.schema.clone())
    }

    /// `spate_window_end(<window>)` (from `*_END(...)`) reads the hidden end column.
    fn window_end_reference(&self, expr: &Expr, available: bool) -> Result<Expr, SqlError> {
        let mut misplaced = false;
        let rewritten = expr
            .clone()
            .transform_up(|e| match &e {
                Expr::ScalarFunction(ScalarFunction { func, .. }) if func.name() == WINDOW_END => {
                    if available {
                        Ok(Transformed::yes(Expr::Column(Column::from_name(
                            WINDOW_END_COLUMN,
                        ))))
                    } else {
                        misplaced = true;
                        Ok(Transformed::no(e))
                    }
                }
                Expr::ScalarFunction(ScalarFunction { func, .. })
                    if GROUP_WINDOWS.contains(&func.name()) =>
                {
                    misplaced = true;
                    Ok(Transformed::no(e))
                }
                _ => Ok(Transformed::no(e)),
            })
            .map_err(planning_error)?
            .data;
        if misplaced {
            return Err(self.error(format!(
                "group-window functions (TUMBLE, HOP, SESSION and their _START/_END) belong in a GROUP BY and the SELECT list above it: {expr}"
            )));
        }
        Ok(rewritten)
    }

    fn filter(&mut self, filter: &Filter) -> Result<Stream, SqlError> {
        // `FROM a, b WHERE a.x = b.y AND ...`: the WHERE clause over the product of two tables
        // is the ON clause of their inner join (Nexmark q4 is written so).
        if let LogicalPlan::Join(join) = filter.input.as_ref()
            && join.join_type == JoinType::Inner
            && join.on.is_empty()
            && join.filter.is_none()
        {
            let mut join = join.clone();
            join.filter = Some(filter.predicate.clone());
            return self.join(&join);
        }
        // `WHERE rn <= N` over ROW_NUMBER(): the window below becomes a Top-N of N rows (and
        // the filter, which then keeps every row, stays as written).
        if let Some(limit) = Self::top_n_limit(filter) {
            self.pending_top_n = Some(limit);
        }
        let input = self.translate(&filter.input)?;
        let predicate = self.physical(&filter.predicate, &input.schema)?;
        let node = self.forward(
            &input,
            "filter",
            input.arrow(),
            factory(move || ExprFilter {
                predicate: predicate.clone(),
            }),
        );
        Ok(Stream { node, ..input })
    }

    fn aggregate(&mut self, aggregate: &Aggregate) -> Result<Stream, SqlError> {
        let input = self.translate(&aggregate.input)?;
        let windows: Vec<usize> = aggregate
            .group_expr
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e, Expr::ScalarFunction(f) if GROUP_WINDOWS.contains(&f.func.name())))
            .map(|(i, _)| i)
            .collect();
        let [window_index] = windows[..] else {
            if windows.is_empty() {
                if let Some((start, end)) = Self::grouped_window_columns(aggregate, &input) {
                    return self.window_columns_aggregate(aggregate, input, start, end);
                }
                return self.group_aggregate(aggregate, input);
            }
            return Err(self.unsupported("GROUP BY with more than one group window"));
        };
        self.group_window(aggregate, input, window_index)
    }

    /// The aggregate calls of `aggregate` as specs whose arguments are columns `__a{i}`, added
    /// to `pre_exprs`; their results are named `__agg{i}`.
    fn aggregate_specs(
        &self,
        aggregate: &Aggregate,
        pre_exprs: &mut Vec<(Expr, String)>,
    ) -> Result<Vec<AggregateSpec>, SqlError> {
        let mut specs = Vec::new();
        for (i, expr) in aggregate.aggr_expr.iter().enumerate() {
            let (function, argument, filter) = self.aggregate_call(expr)?;
            // `agg(x) FILTER (WHERE f)` is `agg(CASE WHEN f THEN x END)`: every aggregate skips
            // NULL values, and a row the filter does not keep gives one (COUNT(*) counts 1s).
            let argument = match filter {
                None => argument,
                Some(filter) => {
                    let value = argument.unwrap_or_else(|| datafusion_expr::lit(1i64));
                    let kept = datafusion_expr::when(filter, value)
                        .end()
                        .map_err(planning_error)?;
                    Some(kept)
                }
            };
            let column = argument.map(|arg| {
                let name = format!("__a{i}");
                pre_exprs.push((arg, name.clone()));
                name
            });
            specs.push(AggregateSpec {
                function,
                column,
                output: format!("__agg{i}"),
            });
        }
        Ok(specs)
    }

    /// One projection computing each expression as a plain column of the given name, chained
    /// after `input`: an aggregate's keys and arguments.
    fn pre_project(
        &mut self,
        input: &Stream,
        exprs: &[(Expr, String)],
        name: &str,
    ) -> Result<(NodeId, SchemaRef), SqlError> {
        let mut fields = Vec::new();
        let mut physical = Vec::new();
        for (expr, column) in exprs {
            let data_type = expr.get_type(&input.schema).map_err(planning_error)?;
            fields.push(Field::new(column, data_type, true));
            physical.push(self.physical(expr, &input.schema)?);
        }
        // A changelog's projection passes its row kinds on (see ExprProject).
        let schema = match input.changelog {
            ChangelogMode::AppendOnly => Arc::new(Schema::new(fields)),
            _ => changelog_schema(&Schema::new(fields)),
        };
        let node = {
            let schema = schema.clone();
            self.forward(
                input,
                name,
                schema.clone(),
                factory(move || ExprProject {
                    exprs: physical.clone(),
                    schema: schema.clone(),
                }),
            )
        };
        Ok((node, schema))
    }

    /// GROUP BY without a group window (Flink's group aggregation): keys and arguments are
    /// computed, hashed by key to the aggregate, whose every row updates its key's result as a
    /// retract changelog, and reshaped to the planned column order with the row kinds after.
    /// Without keys, one subtask holds the one result. Over a changelog, rows taken back take
    /// their values back out of the results.
    fn group_aggregate(
        &mut self,
        aggregate: &Aggregate,
        input: Stream,
    ) -> Result<Stream, SqlError> {
        let mut pre_exprs: Vec<(Expr, String)> = Vec::new();
        let mut keys = Vec::new();
        for (i, expr) in aggregate.group_expr.iter().enumerate() {
            let name = format!("__k{i}");
            keys.push(name.clone());
            pre_exprs.push((expr.clone(), name));
        }
        let (parallelism, name) = if keys.is_empty() {
            keys.push("__all".into());
            pre_exprs.push((datafusion_expr::lit(0i64), "__all".into()));
            (1, "group aggregate (no keys)".to_string())
        } else {
            let keys: Vec<String> = aggregate.group_expr.iter().map(|e| e.to_string()).collect();
            (
                self.parallelism,
                format!("group aggregate by {}", keys.join(", ")),
            )
        };
        let specs = self.aggregate_specs(aggregate, &mut pre_exprs)?;
        let (pre, pre_schema) = self.pre_project(&input, &pre_exprs, "group keys and arguments")?;
        let function = GroupAggregate::new(&keys, &specs, &pre_schema)
            .map_err(|e| self.error(format!("GROUP BY: {e}")))?;
        let changes = function.output_schema();
        let make = {
            let (keys, pre_schema) = (keys.clone(), pre_schema.clone());
            move |_: &OperatorContext| -> spate_api::Result<Box<dyn Operator>> {
                Ok(Box::new(KeyedProcessOperator::new(
                    function.clone(),
                    keys.clone(),
                    pre_schema.clone(),
                )?))
            }
        };
        let node = self.graph.add_operator(
            name.clone(),
            parallelism,
            Arc::new(make),
            pre_schema,
            changes.clone(),
        );
        self.graph.nodes[node].changelog = ChangelogMode::Retract;
        self.graph
            .connect(pre, node, Partitioning::Hash(keys.clone()));
        let aggregated = Stream {
            node,
            schema: Arc::new(
                DFSchema::try_from(spate_api::data_schema(&changes).as_ref().clone())
                    .map_err(planning_error)?,
            ),
            parallelism,
            event_time: None,
            has_window_end: false,
            window: None,
            changelog: ChangelogMode::Retract,
            updated_by: Some(name.clone()),
        };

        // The planned column order and types: the group keys, the aggregates, then the kinds.
        let planned = Arc::new(aggregate.schema.as_arrow().clone());
        let results = keys.len();
        let mut columns: Vec<(usize, DataType)> = (0..aggregate.group_expr.len())
            .chain((0..aggregate.aggr_expr.len()).map(|i| results + i))
            .enumerate()
            .map(|(to, from)| (from, planned.field(to).data_type().clone()))
            .collect();
        columns.push((changes.fields().len() - 1, DataType::UInt8));
        let output = changelog_schema(&planned);
        let node = {
            let schema = output.clone();
            self.forward(
                &aggregated,
                "group aggregate result",
                output,
                factory(move || Reshape {
                    columns: columns.clone(),
                    schema: schema.clone(),
                }),
            )
        };
        Ok(Stream {
            node,
            schema: aggregate.schema.clone(),
            parallelism,
            event_time: None,
            has_window_end: false,
            window: None,
            changelog: ChangelogMode::Retract,
            updated_by: Some(name),
        })
    }

    /// The window operator's aggregate for one SQL aggregate call, its argument and its
    /// FILTER (WHERE ...) condition.
    fn aggregate_call(
        &self,
        expr: &Expr,
    ) -> Result<(AggregateFunction, Option<Expr>, Option<Expr>), SqlError> {
        let Expr::AggregateFunction(AggregateCall { func, params }) = expr.clone().unalias() else {
            return Err(self.unsupported(format!("aggregate expression {expr}")));
        };
        if !params.order_by.is_empty() {
            return Err(self.unsupported(format!("ORDER BY inside {expr}")));
        }
        let name = func.name().to_lowercase();
        let function = match (name.as_str(), params.distinct) {
            ("count", false) => AggregateFunction::Count,
            ("count", true) => AggregateFunction::CountDistinct,
            ("sum", false) => AggregateFunction::Sum,
            ("min" | "max", _) if params.distinct => {
                // DISTINCT does not change a minimum or maximum.
                if name == "min" {
                    AggregateFunction::Min
                } else {
                    AggregateFunction::Max
                }
            }
            ("min", _) => AggregateFunction::Min,
            ("max", _) => AggregateFunction::Max,
            ("avg" | "mean", false) => AggregateFunction::Avg,
            (_, true) => {
                return Err(self.unsupported(format!(
                    "{expr}: DISTINCT is supported for COUNT, MIN and MAX"
                )));
            }
            _ => {
                return Err(self.unsupported(format!(
                    "aggregate function {} (supported: COUNT, COUNT(DISTINCT), SUM, MIN, MAX, AVG)",
                    name.to_uppercase()
                )));
            }
        };
        let argument = match params.args.as_slice() {
            // COUNT(*) is planned as COUNT(1).
            [] | [Expr::Literal(..)] if function == AggregateFunction::Count => None,
            [arg] => Some(arg.clone()),
            _ => return Err(self.unsupported(format!("{expr}: aggregates take one argument"))),
        };
        Ok((function, argument, params.filter.map(|filter| *filter)))
    }
}
