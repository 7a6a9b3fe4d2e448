//! Flink functions the planner does not know, in terms it does:
//! * the auxiliary group-window functions, so they match the GROUP BY: `TUMBLE_START(t, i)` is
//!   `TUMBLE(t, i)` (a group window's value is its start) and `TUMBLE_END(t, i)` is
//!   `spate_window_end(TUMBLE(t, i))`; likewise HOP and SESSION;
//! * `MOD(a, b)`, which is `a % b` (both truncate towards zero).

use std::ops::ControlFlow;

use datafusion_sql::sqlparser::ast::{
    BinaryOperator, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, Ident, ObjectName, ObjectNamePart, Spanned, Statement,
    visit_expressions_mut,
};

use crate::error::SqlError;
use crate::functions::WINDOW_END;

pub fn flink_functions(statement: &mut Statement) -> Result<(), SqlError> {
    let mut failure = None;
    let _ = visit_expressions_mut(statement, |expr| {
        let Expr::Function(function) = expr else {
            return ControlFlow::<()>::Continue(());
        };
        let name = function.name.to_string().to_uppercase();
        if name == "MOD"
            && let Some([a, b]) = unnamed_args(function).as_deref()
        {
            *expr = Expr::Nested(Box::new(Expr::BinaryOp {
                left: Box::new(a.clone()),
                op: BinaryOperator::Modulo,
                right: Box::new(b.clone()),
            }));
            return ControlFlow::Continue(());
        }
        let Some((window, part)) = name.split_once('_') else {
            return ControlFlow::Continue(());
        };
        if !["TUMBLE", "HOP", "SESSION"].contains(&window) {
            return ControlFlow::Continue(());
        }
        let mut group = function.clone();
        group.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new(window))]);
        match part {
            "START" => *expr = Expr::Function(group),
            "END" => *expr = Expr::Function(wrap(WINDOW_END, Expr::Function(group), function)),
            _ => {
                failure = Some(SqlError::unsupported(
                    Some(function.name.span().start.into()),
                    format!("{name} (supported: {window}_START, {window}_END)"),
                ));
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    failure.map_or(Ok(()), Err)
}

fn unnamed_args(function: &Function) -> Option<Vec<Expr>> {
    let FunctionArguments::List(list) = &function.args else {
        return None;
    };
    list.args
        .iter()
        .map(|arg| match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn wrap(name: &str, inner: Expr, like: &Function) -> Function {
    let mut outer = like.clone();
    outer.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new(name))]);
    outer.args = FunctionArguments::List(FunctionArgumentList {
        duplicate_treatment: None,
        args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(inner))],
        clauses: Vec::new(),
    });
    outer
}
