//! Streaming SQL in the Flink dialect. A job is a script of `CREATE TABLE`, `CREATE VIEW` and
//! `INSERT INTO` statements; DataFusion parses and plans each query (types, coercion, scalar
//! functions), and the plans are translated into one Spate stream graph.

mod catalog;
mod concat;
mod connectors;
mod ddl;
mod depth;
mod error;
mod exec;
mod flink;
mod functions;
mod regexp_replace;
mod rewrite;
mod string_functions;
mod translate;
mod tvf;
mod types;

use datafusion_expr::LogicalPlan;
use datafusion_optimizer::Analyzer;
use datafusion_sql::planner::SqlToRel;
use datafusion_sql::sqlparser::ast::{Spanned, Statement, TableObject};
use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::parser::Parser;
use spate_graph::StreamGraph;

pub use error::{Position, SqlError};

use crate::catalog::Catalog;
use crate::ddl::{normalize, position_of, table_def};
use crate::error::{parser_error, planning_error};
use crate::translate::Translator;

/// Stack of the planning thread: enough for the recursive walks of sqlparser and DataFusion
/// over expressions up to the depth limit, even in a debug build (it is reserved, not used).
const PLANNER_STACK: usize = 256 << 20;

/// Plans a SQL job into a stream graph whose operators run at `parallelism`.
///
/// Planning runs on a thread of its own with a deep stack, whatever the caller's (a Tokio
/// worker thread has 2 MiB), so that the depth limit, not the caller, decides what is refused.
pub fn plan(sql: &str, parallelism: u32) -> Result<StreamGraph, SqlError> {
    std::thread::scope(|scope| {
        let planner = std::thread::Builder::new()
            .name("sql-planner".into())
            .stack_size(PLANNER_STACK)
            .spawn_scoped(scope, || plan_statements(sql, parallelism))
            .map_err(|e| SqlError::new(format!("cannot start the SQL planner: {e}"), None))?;
        match planner.join() {
            Ok(planned) => planned,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
    .map_err(|e| e.with_source(sql))
}

fn plan_statements(sql: &str, parallelism: u32) -> Result<StreamGraph, SqlError> {
    let preprocessed = flink::preprocess(sql)?;
    let statements = Parser::parse_sql(&GenericDialect {}, &preprocessed.text)
        .map_err(|e| parser_error(&e.to_string()))?;
    let mut catalog = Catalog::new();
    let mut graph = StreamGraph::new("sql");
    let mut inserts = 0;
    let mut tables = preprocessed.tables.iter();
    for mut statement in statements {
        depth::check(&statement)?;
        let position: Position = statement.span().start.into();
        tvf::window_table_functions(&mut statement)?;
        tvf::refuse_remaining(&statement)?;
        rewrite::flink_functions(&mut statement)?;
        match statement {
            Statement::CreateTable(create) => {
                let def = table_def(&create, tables.next(), &catalog)?;
                let at = def.position;
                connectors::connector(&def.connector, &def.name)
                    .map_err(|e| SqlError::at(at, e.to_string()))?;
                catalog.add_table(def).map_err(|e| SqlError::at(at, e))?;
            }
            Statement::CreateView(view) => {
                let name = view
                    .name
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .ok_or_else(|| SqlError::at(position, "a view needs a name"))?;
                let plan = query_plan(&catalog, Statement::Query(view.query.clone()))?;
                catalog
                    .add_view(normalize(name), plan)
                    .map_err(|e| SqlError::at(position_of(name), e))?;
            }
            Statement::Insert(insert) => {
                let TableObject::TableName(target) = &insert.table else {
                    return Err(SqlError::unsupported(
                        Some(position),
                        "INSERT INTO a table function",
                    ));
                };
                if !insert.columns.is_empty() {
                    return Err(SqlError::unsupported(
                        Some(position),
                        "INSERT with a column list; select the sink's columns in order",
                    ));
                }
                let ident = target
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .ok_or_else(|| SqlError::at(position, "INSERT needs a target table"))?;
                let def = catalog.table(&normalize(ident)).cloned().ok_or_else(|| {
                    SqlError::at(
                        position_of(ident),
                        format!("INSERT INTO {}: no such table", ident.value),
                    )
                })?;
                let query = insert
                    .source
                    .clone()
                    .ok_or_else(|| SqlError::at(position, "INSERT needs a SELECT"))?;
                let plan =
                    query_plan(&catalog, Statement::Query(query)).map_err(|e| e.or_at(position))?;
                let mut translator = Translator {
                    graph: &mut graph,
                    parallelism,
                    position,
                    pending_top_n: None,
                };
                let stream = translator.translate(&plan)?;
                translator.sink(stream, &def)?;
                inserts += 1;
            }
            Statement::Query(_) => {
                return Err(SqlError::unsupported(
                    Some(position),
                    "a bare SELECT; write its results with INSERT INTO a sink table (for example one WITH ('connector' = 'print'))",
                ));
            }
            other => {
                let kind = other.to_string();
                let kind = kind
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ");
                return Err(SqlError::unsupported(
                    Some(position),
                    format!(
                        "statement '{kind} ...'; a job has CREATE TABLE, CREATE VIEW and INSERT INTO statements"
                    ),
                ));
            }
        }
    }
    if inserts == 0 {
        return Err(SqlError::new(
            "the job has no INSERT INTO statement, so it would compute nothing",
            None,
        ));
    }
    Ok(graph)
}

/// Plans a query with DataFusion and analyzes it (inlines views, coerces types).
fn query_plan(catalog: &Catalog, query: Statement) -> Result<LogicalPlan, SqlError> {
    let plan = SqlToRel::new(catalog)
        .sql_statement_to_plan(query)
        .map_err(planning_error)?;
    Analyzer::new()
        .execute_and_check(plan, catalog.config(), |_, _| {})
        .map_err(planning_error)
}
