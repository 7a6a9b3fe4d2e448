//! CREATE TABLE: declared columns, computed columns, the watermark and the connector options.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use datafusion_common::tree_node::TreeNode;
use datafusion_common::{DFSchema, ScalarValue};
use datafusion_expr::{BinaryExpr, Expr, ExprSchemable, Operator};
use datafusion_optimizer::analyzer::type_coercion::TypeCoercionRewriter;
use datafusion_sql::planner::{PlannerContext, SqlToRel};
use datafusion_sql::sqlparser::ast::{
    ColumnOption, CreateTable, CreateTableOptions, Expr as SqlExpr, Ident, PrimaryKeyConstraint,
    SqlOption, TableConstraint, Value,
};
use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::parser::Parser;

use crate::catalog::Catalog;
use crate::error::{Position, SqlError, parser_error, planning_error};
use crate::flink::{Clause, TableExtras};
use crate::types::arrow_type;

#[derive(Debug)]
pub struct TableDef {
    pub name: String,
    pub position: Position,
    /// The columns the connector reads or writes.
    pub physical: SchemaRef,
    /// Computed columns' expressions, planned against the physical columns with types coerced.
    pub computed: Vec<Expr>,
    /// Physical then computed columns: what queries see.
    pub schema: SchemaRef,
    /// The event-time column and the out-of-orderness bound in milliseconds.
    pub watermark: Option<(String, i64)>,
    pub connector: String,
    pub options: BTreeMap<String, String>,
    /// `PRIMARY KEY (...) NOT ENFORCED`: the key's columns (not null), empty without one.
    pub primary_key: Vec<String>,
}

/// Identifiers as DataFusion normalizes them: unquoted ones are lowercased.
pub fn normalize(ident: &Ident) -> String {
    match ident.quote_style {
        None => ident.value.to_lowercase(),
        Some(_) => ident.value.clone(),
    }
}

pub fn position_of(ident: &Ident) -> Position {
    ident.span.start.into()
}

/// Milliseconds of an interval literal without months (months have no fixed length).
pub fn interval_ms(value: &ScalarValue) -> Option<i64> {
    match value {
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
            Some(v.days as i64 * 86_400_000 + v.nanoseconds / 1_000_000)
        }
        ScalarValue::IntervalDayTime(Some(v)) => {
            Some(v.days as i64 * 86_400_000 + v.milliseconds as i64)
        }
        _ => None,
    }
}

/// Moves a position reported inside a clause's text to where the clause is in the job.
fn shift(error: SqlError, clause: &Clause) -> SqlError {
    let base = clause.position;
    let position = match error.position {
        Some(p) if p.line == 1 => Position {
            line: base.line,
            column: base.column + p.column - 1,
        },
        Some(p) => Position {
            line: base.line + p.line - 1,
            column: p.column,
        },
        None => base,
    };
    SqlError::at(position, error.message)
}

/// Plans an expression of a clause against `schema`, with DataFusion's type coercion applied.
fn plan_clause(clause: &Clause, schema: &DFSchema, catalog: &Catalog) -> Result<Expr, SqlError> {
    let ast = Parser::new(&GenericDialect {})
        .try_with_sql(&clause.expression)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| shift(parser_error(&e.to_string()), clause))?;
    let expr = SqlToRel::new(catalog)
        .sql_to_expr(ast, schema, &mut PlannerContext::new())
        .map_err(|e| shift(planning_error(e), clause))?;
    expr.rewrite(&mut TypeCoercionRewriter::new(schema))
        .map(|t| t.data)
        .map_err(|e| shift(planning_error(e), clause))
}

fn option_value(option: &SqlOption) -> Option<(String, String)> {
    let SqlOption::KeyValue { key, value } = option else {
        return None;
    };
    let value = match value {
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            Value::Number(n, _) => n.clone(),
            Value::Boolean(b) => b.to_string(),
            _ => return None,
        },
        _ => return None,
    };
    Some((key.value.clone(), value))
}

pub fn table_def(
    create: &CreateTable,
    extras: Option<&TableExtras>,
    catalog: &Catalog,
) -> Result<TableDef, SqlError> {
    let name_ident = create
        .name
        .0
        .last()
        .and_then(|part| part.as_ident())
        .ok_or_else(|| SqlError::new("a table needs a name", None))?;
    let name = normalize(name_ident);
    let position = position_of(name_ident);
    if create.query.is_some() {
        return Err(SqlError::unsupported(
            Some(position),
            "CREATE TABLE ... AS SELECT",
        ));
    }

    let primary_key = primary_key(create, &name, position)?;
    let mut fields = Vec::new();
    for column in &create.columns {
        if let Some(option) = column.options.iter().find(|o| {
            !matches!(
                o.option,
                ColumnOption::NotNull | ColumnOption::Null | ColumnOption::PrimaryKey(_)
            )
        }) {
            return Err(SqlError::unsupported(
                Some(position_of(&column.name)),
                format!("column '{}': {}", column.name.value, option.option),
            ));
        }
        let data_type = arrow_type(&column.data_type).ok_or_else(|| {
            SqlError::at(
                position_of(&column.name),
                format!(
                    "column '{}': type {} is not supported",
                    column.name.value, column.data_type
                ),
            )
        })?;
        let column_name = normalize(&column.name);
        // As in Flink, the key's columns are NOT NULL whether declared so or not.
        let not_null = primary_key.contains(&column_name)
            || column
                .options
                .iter()
                .any(|o| matches!(o.option, ColumnOption::NotNull));
        fields.push(Field::new(column_name, data_type, !not_null));
    }
    if fields.is_empty() {
        return Err(SqlError::at(
            position,
            format!("table '{name}' declares no columns"),
        ));
    }
    if let Some(missing) = primary_key
        .iter()
        .find(|k| !fields.iter().any(|f| f.name() == *k))
    {
        return Err(SqlError::at(
            position,
            format!(
                "table '{name}': PRIMARY KEY column '{missing}' is not a declared column \
                 (computed columns cannot be keys)"
            ),
        ));
    }
    let physical = Arc::new(Schema::new(fields.clone()));

    let extras = extras.cloned().unwrap_or_default();
    let physical_df =
        DFSchema::try_from_qualified_schema(name.as_str(), &physical).map_err(planning_error)?;
    let mut computed = Vec::new();
    for clause in &extras.computed {
        let expr = plan_clause(clause, &physical_df, catalog)?;
        let data_type = expr
            .get_type(&physical_df)
            .map_err(|e| shift(planning_error(e), clause))?;
        fields.push(Field::new(clause.column.clone(), data_type, true));
        computed.push(expr);
    }
    let schema = Arc::new(Schema::new(fields));

    let watermark = match &extras.watermark {
        None => None,
        Some(clause) => Some(watermark(clause, &name, &schema, catalog)?),
    };

    let mut options = BTreeMap::new();
    let listed = match &create.table_options {
        CreateTableOptions::None => &[][..],
        CreateTableOptions::With(list) | CreateTableOptions::Options(list) => list.as_slice(),
        _ => {
            return Err(SqlError::unsupported(
                Some(position),
                "table options other than WITH (...)",
            ));
        }
    };
    for option in listed {
        let (key, value) = option_value(option).ok_or_else(|| {
            SqlError::at(
                position,
                format!("table '{name}': options are written 'key' = 'value', got {option}"),
            )
        })?;
        options.insert(key, value);
    }
    let connector = options.remove("connector").ok_or_else(|| {
        SqlError::at(
            position,
            format!("table '{name}' has no 'connector' option; add WITH ('connector' = '...')"),
        )
    })?;

    Ok(TableDef {
        name,
        position,
        physical,
        computed,
        schema,
        watermark,
        connector,
        options,
        primary_key,
    })
}

/// The columns of the table's `PRIMARY KEY`, declared on a column or after the columns, in the
/// key's order; empty without one. Flink owns no data it could check a key against, so only
/// `NOT ENFORCED` is taken, as in Flink; other constraints are refused.
fn primary_key(create: &CreateTable, table: &str, at: Position) -> Result<Vec<String>, SqlError> {
    let mut keys: Vec<(Vec<String>, &PrimaryKeyConstraint)> = Vec::new();
    for constraint in &create.constraints {
        let TableConstraint::PrimaryKey(key) = constraint else {
            return Err(SqlError::unsupported(
                Some(at),
                format!("table '{table}': constraint {constraint} (only PRIMARY KEY is)"),
            ));
        };
        let columns = key
            .columns
            .iter()
            .map(|c| match &c.column.expr {
                SqlExpr::Identifier(ident) => Ok(normalize(ident)),
                other => Err(SqlError::at(
                    at,
                    format!("table '{table}': PRIMARY KEY names columns, not {other}"),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        keys.push((columns, key));
    }
    for column in &create.columns {
        for option in &column.options {
            if let ColumnOption::PrimaryKey(key) = &option.option {
                keys.push((vec![normalize(&column.name)], key));
            }
        }
    }
    let Some((columns, key)) = keys.first() else {
        return Ok(Vec::new());
    };
    if keys.len() > 1 {
        return Err(SqlError::at(
            at,
            format!("table '{table}' declares more than one PRIMARY KEY"),
        ));
    }
    if key.characteristics.and_then(|c| c.enforced) != Some(false) {
        return Err(SqlError::at(
            at,
            format!(
                "table '{table}': write PRIMARY KEY (...) NOT ENFORCED; as in Flink, a key is \
                 not checked against the data (which the job does not own), so only NOT \
                 ENFORCED is supported"
            ),
        ));
    }
    if let Some(twice) = columns
        .iter()
        .enumerate()
        .find(|(i, c)| columns[..*i].contains(c))
    {
        return Err(SqlError::at(
            at,
            format!(
                "table '{table}': PRIMARY KEY names column '{}' twice",
                twice.1
            ),
        ));
    }
    Ok(columns.clone())
}

/// `WATERMARK FOR ts AS ts - INTERVAL 'n' unit` (or `AS ts`): bounded out-of-orderness.
fn watermark(
    clause: &Clause,
    table: &str,
    schema: &Schema,
    catalog: &Catalog,
) -> Result<(String, i64), SqlError> {
    let column = schema.field_with_name(&clause.column).map_err(|_| {
        SqlError::at(
            clause.position,
            format!(
                "WATERMARK FOR '{}': no such column in '{table}'",
                clause.column
            ),
        )
    })?;
    if !matches!(column.data_type(), DataType::Timestamp(_, _)) {
        return Err(SqlError::at(
            clause.position,
            format!(
                "WATERMARK FOR '{}': the column is {}, a time attribute must be TIMESTAMP(3)",
                clause.column,
                column.data_type()
            ),
        ));
    }
    let df = DFSchema::try_from_qualified_schema(table, schema).map_err(planning_error)?;
    let advice = format!(
        "use {col} - INTERVAL 'n' SECOND (bounded out-of-orderness) or {col}",
        col = clause.column
    );
    let expr = plan_clause(clause, &df, catalog).map_err(|e| {
        SqlError::new(
            format!(
                "watermark expression '{}': {}; {advice}",
                clause.expression, e.message
            ),
            e.position,
        )
    })?;
    let is_column = |e: &Expr| matches!(e, Expr::Column(c) if c.name == clause.column);
    let bound = match &expr {
        e if is_column(e) => Some(0),
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Minus,
            right,
        }) if is_column(left) => match right.as_ref() {
            Expr::Literal(value, _) => interval_ms(value),
            _ => None,
        },
        _ => None,
    };
    match bound {
        Some(bound) if bound >= 0 => Ok((clause.column.clone(), bound)),
        _ => Err(SqlError::unsupported(
            Some(clause.position),
            format!("watermark expression '{}'; {advice}", clause.expression),
        )),
    }
}
