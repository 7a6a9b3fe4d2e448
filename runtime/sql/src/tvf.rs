//! Window table functions aggregated by their window, in terms of group windows:
//!
//! ```sql
//! SELECT window_start, window_end, auction, COUNT(*)
//! FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
//! GROUP BY window_start, window_end, auction
//! ```
//!
//! is, by Flink's definition of window aggregation, the same as grouping `bid` by
//! `TUMBLE(dateTime, INTERVAL '10' SECOND)` and `auction`, with `window_start` the window's start
//! and `window_end` its end, wherever the SELECT stands (a view, a derived table on either side
//! of a join, a CTE, a UNION). Other uses of a window table function (joined directly, Top-N,
//! no grouping by the window) are refused.

use std::ops::ControlFlow;

use datafusion_sql::sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments,
    GroupByExpr, Ident, ObjectName, ObjectNamePart, Query, Select, SetExpr, Spanned, Statement,
    TableFactor, Visit, Visitor, visit_expressions_mut,
};
use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::parser::Parser;

use crate::error::{Position, SqlError};
use crate::functions::WINDOW_END;

pub fn window_table_functions(statement: &mut Statement) -> Result<(), SqlError> {
    match statement {
        Statement::Insert(insert) => match insert.source.as_mut() {
            Some(query) => query_tvfs(query),
            None => Ok(()),
        },
        Statement::CreateView(view) => query_tvfs(&mut view.query),
        _ => Ok(()),
    }
}

fn query_tvfs(query: &mut Query) -> Result<(), SqlError> {
    if let Some(with) = query.with.as_mut() {
        for cte in &mut with.cte_tables {
            query_tvfs(&mut cte.query)?;
        }
    }
    set_expr_tvfs(query.body.as_mut())
}

fn set_expr_tvfs(body: &mut SetExpr) -> Result<(), SqlError> {
    match body {
        SetExpr::Select(select) => select_tvfs(select),
        SetExpr::Query(inner) => query_tvfs(inner),
        SetExpr::SetOperation { left, right, .. } => {
            set_expr_tvfs(left)?;
            set_expr_tvfs(right)
        }
        _ => Ok(()),
    }
}

/// The queries nested in a FROM item (derived tables, parenthesized joins), wherever it stands:
/// first, or on either side of a join.
fn relation_tvfs(relation: &mut TableFactor) -> Result<(), SqlError> {
    match relation {
        TableFactor::Derived { subquery, .. } => query_tvfs(subquery),
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => {
            relation_tvfs(&mut table_with_joins.relation)?;
            for join in &mut table_with_joins.joins {
                relation_tvfs(&mut join.relation)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A window table function that no rewrite above took (one in a join, in a subquery of WHERE):
/// refused by name and position, rather than by the planner's dump of the syntax tree.
pub fn refuse_remaining(statement: &Statement) -> Result<(), SqlError> {
    struct Find(Option<SqlError>);
    impl Visitor for Find {
        type Break = ();
        fn pre_visit_table_factor(&mut self, relation: &TableFactor) -> ControlFlow<()> {
            if let TableFactor::TableFunction { expr, .. } = relation {
                let (name, position) = match expr {
                    Expr::Function(f) => (f.name.to_string().to_uppercase(), f.name.span()),
                    other => (other.to_string(), other.span()),
                };
                self.0 = Some(SqlError::unsupported(
                    Some(position.start.into()),
                    format!(
                        "TABLE({name}(...)) here; a window table function is supported as the only FROM item of a SELECT that groups by window_start and window_end"
                    ),
                ));
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut find = Find(None);
    let _ = statement.visit(&mut find);
    find.0.map_or(Ok(()), Err)
}

fn function(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new(name))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    })
}

fn arguments(f: &Function) -> Vec<Expr> {
    match &f.args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// `window_start`, `t.window_end`, ...: which window column an expression names, if any.
fn window_column(expr: &Expr) -> Option<String> {
    let name = match expr {
        Expr::Identifier(ident) => &ident.value,
        Expr::CompoundIdentifier(parts) => &parts.last()?.value,
        _ => return None,
    };
    let lower = name.to_lowercase();
    ["window_start", "window_end", "window_time"]
        .contains(&lower.as_str())
        .then_some(lower)
}

fn select_tvfs(select: &mut Select) -> Result<(), SqlError> {
    for from in &mut select.from {
        relation_tvfs(&mut from.relation)?;
        for join in &mut from.joins {
            relation_tvfs(&mut join.relation)?;
        }
    }
    let Some(first) = select.from.first() else {
        return Ok(());
    };
    let TableFactor::TableFunction {
        expr: Expr::Function(tvf),
        alias,
    } = &first.relation
    else {
        return Ok(());
    };
    let position: Position = tvf.name.span().start.into();
    let kind = tvf.name.to_string().to_uppercase();
    if select.from.len() > 1 || !first.joins.is_empty() {
        return Err(SqlError::unsupported(
            Some(position),
            format!("joining the result of {kind}(...) (window joins)"),
        ));
    }
    let args = arguments(tvf);
    let usage = || {
        SqlError::at(
            position,
            format!(
                "expected {kind}(TABLE t, DESCRIPTOR(time_column), {})",
                if kind == "HOP" { "slide, size" } else { "size" }
            ),
        )
    };
    let table = match args.first() {
        Some(Expr::Identifier(ident)) => ident.to_string(),
        Some(Expr::CompoundIdentifier(parts)) => ObjectName::from(parts.clone()).to_string(),
        _ => return Err(usage()),
    };
    let time = match args.get(1) {
        Some(Expr::Function(d)) if d.name.to_string().eq_ignore_ascii_case("DESCRIPTOR") => {
            match arguments(d).as_slice() {
                [time @ Expr::Identifier(_)] => time.clone(),
                _ => return Err(usage()),
            }
        }
        _ => return Err(usage()),
    };
    let window = match (kind.as_str(), &args[2..]) {
        ("TUMBLE", [size]) => function("TUMBLE", vec![time, size.clone()]),
        ("HOP", [slide, size]) => function("HOP", vec![time, slide.clone(), size.clone()]),
        ("SESSION", [gap]) => function("SESSION", vec![time, gap.clone()]),
        ("TUMBLE" | "HOP" | "SESSION", _) => return Err(usage()),
        (other, _) => {
            return Err(SqlError::unsupported(
                Some(position),
                format!("window table function {other}"),
            ));
        }
    };

    // The window must be what the query groups by.
    let GroupByExpr::Expressions(groups, _) = &mut select.group_by else {
        return Err(SqlError::unsupported(
            Some(position),
            format!("{kind}(...) with GROUP BY ALL"),
        ));
    };
    let before = groups.len();
    groups.retain(|g| window_column(g).is_none());
    if groups.len() == before {
        return Err(SqlError::unsupported(
            Some(position),
            format!(
                "{kind}(...) without GROUP BY window_start, window_end (only window aggregation is supported)"
            ),
        ));
    }
    groups.push(window.clone());

    let text = match alias {
        Some(alias) => format!("{table} AS {alias}"),
        None => table,
    };
    select.from[0].relation = Parser::new(&GenericDialect {})
        .try_with_sql(&text)
        .and_then(|mut p| p.parse_table_factor())
        .map_err(|e| SqlError::at(position, e.to_string()))?;

    let mut failure = None;
    let mut rewrite = |expr: &mut Expr| {
        match window_column(expr).as_deref() {
            Some("window_start") => *expr = window.clone(),
            Some("window_end") => *expr = function(WINDOW_END, vec![window.clone()]),
            Some(_) => {
                failure = Some(SqlError::unsupported(Some(position), "window_time"));
                return ControlFlow::Break(());
            }
            None => {}
        }
        ControlFlow::Continue(())
    };
    let _ = visit_expressions_mut(&mut select.projection, &mut rewrite);
    if let Some(having) = select.having.as_mut() {
        let _ = visit_expressions_mut(having, &mut rewrite);
    }
    failure.map_or(Ok(()), Err)
}
