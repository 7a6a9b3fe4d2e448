//! A limit on how deeply expressions nest. Planning and evaluation walk expression trees
//! recursively, so an expression like `a + b + c + ...` of thousands of terms would overflow a
//! thread's stack and abort the process (the JobMaster, or every worker that deploys the job, in
//! a crash loop). It is refused here instead, with its position, before anything else walks it.

use std::ops::ControlFlow;

use datafusion_sql::sqlparser::ast::{Expr, Spanned, Statement, Visit, Visitor};

use crate::error::{Position, SqlError};

/// Deepest nesting accepted. Far beyond hand-written SQL; generated chains of OR or `+` longer
/// than this are better written with `IN (...)` or split.
pub(crate) const MAX_EXPRESSION_DEPTH: usize = 1000;

struct Depth {
    current: usize,
}

impl Visitor for Depth {
    type Break = Position;

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Position> {
        self.current += 1;
        match self.current > MAX_EXPRESSION_DEPTH {
            true => ControlFlow::Break(expr.span().start.into()),
            false => ControlFlow::Continue(()),
        }
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<Position> {
        self.current -= 1;
        ControlFlow::Continue(())
    }
}

/// Refuses a statement with an expression nested deeper than [`MAX_EXPRESSION_DEPTH`].
pub(crate) fn check(statement: &Statement) -> Result<(), SqlError> {
    match statement.visit(&mut Depth { current: 0 }) {
        ControlFlow::Break(at) => Err(SqlError::at(
            at,
            format!(
                "this expression nests more than {MAX_EXPRESSION_DEPTH} levels deep (a chain of \
                 that many operators, say); split it, or write a long chain of OR as IN (...)"
            ),
        )),
        ControlFlow::Continue(()) => Ok(()),
    }
}
