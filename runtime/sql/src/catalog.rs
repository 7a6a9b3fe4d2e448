//! The tables and views a job has declared so far, served to DataFusion's SQL planner.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, SchemaRef};
use datafusion_common::config::ConfigOptions;
use datafusion_common::{Result, TableReference, plan_err};
use datafusion_expr::planner::{ContextProvider, ExprPlanner};
use datafusion_expr::{
    AggregateUDF, HigherOrderUDF, LogicalPlan, ScalarUDF, TableSource, WindowUDF,
};

use crate::ddl::TableDef;
use crate::functions::window_functions;
use crate::string_functions::string_functions;

/// A declared table as the planner sees it: its columns, physical and computed.
#[derive(Debug)]
pub struct DeclaredTable(pub Arc<TableDef>);

impl TableSource for DeclaredTable {
    fn schema(&self) -> SchemaRef {
        self.0.schema.clone()
    }
}

/// A view: the planner inlines its plan where it is used.
#[derive(Debug)]
struct View {
    plan: LogicalPlan,
    schema: SchemaRef,
}

impl TableSource for View {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn get_logical_plan(&self) -> Option<Cow<'_, LogicalPlan>> {
        Some(Cow::Borrowed(&self.plan))
    }
}

pub struct Catalog {
    tables: HashMap<String, Arc<TableDef>>,
    views: HashMap<String, Arc<View>>,
    functions: HashMap<String, Arc<ScalarUDF>>,
    aggregates: HashMap<String, Arc<AggregateUDF>>,
    planners: Vec<Arc<dyn ExprPlanner>>,
    config: ConfigOptions,
}

impl Catalog {
    pub fn new() -> Self {
        let mut functions = HashMap::new();
        for f in datafusion_functions::all_default_functions()
            .into_iter()
            .chain(window_functions())
            .chain(string_functions())
        {
            for alias in f.aliases() {
                functions.insert(alias.clone(), f.clone());
            }
            functions.insert(f.name().to_string(), f);
        }
        let mut aggregates = HashMap::new();
        for f in datafusion_functions_aggregate::all_default_aggregate_functions() {
            for alias in f.aliases() {
                aggregates.insert(alias.clone(), f.clone());
            }
            aggregates.insert(f.name().to_string(), f);
        }
        let mut config = ConfigOptions::default();
        // Spate's batches carry Utf8, not Utf8View; and errors should point into the text.
        config.sql_parser.map_string_types_to_utf8view = false;
        config.sql_parser.collect_spans = true;
        Catalog {
            tables: HashMap::new(),
            views: HashMap::new(),
            functions,
            aggregates,
            planners: vec![
                // COUNT(*) becomes COUNT(1).
                Arc::new(datafusion_functions_aggregate::planner::AggregateFunctionPlanner),
                Arc::new(datafusion_functions::core::planner::CoreFunctionPlanner::default()),
                Arc::new(datafusion_functions::unicode::planner::UnicodeFunctionPlanner),
                Arc::new(datafusion_functions::datetime::planner::DatetimeFunctionPlanner),
            ],
            config,
        }
    }

    pub fn config(&self) -> &ConfigOptions {
        &self.config
    }

    pub fn table(&self, name: &str) -> Option<&Arc<TableDef>> {
        self.tables.get(name)
    }

    fn taken(&self, name: &str) -> bool {
        self.tables.contains_key(name) || self.views.contains_key(name)
    }

    pub fn add_table(&mut self, table: TableDef) -> Result<(), String> {
        if self.taken(&table.name) {
            return Err(format!(
                "a table or view named '{}' already exists",
                table.name
            ));
        }
        self.tables.insert(table.name.clone(), Arc::new(table));
        Ok(())
    }

    pub fn add_view(&mut self, name: String, plan: LogicalPlan) -> Result<(), String> {
        if self.taken(&name) {
            return Err(format!("a table or view named '{name}' already exists"));
        }
        let schema = Arc::new(plan.schema().as_arrow().clone());
        self.views.insert(name, Arc::new(View { plan, schema }));
        Ok(())
    }
}

impl ContextProvider for Catalog {
    fn get_table_source(&self, name: TableReference) -> Result<Arc<dyn TableSource>> {
        let key = name.table();
        if let Some(table) = self.tables.get(key) {
            return Ok(Arc::new(DeclaredTable(table.clone())));
        }
        if let Some(view) = self.views.get(key) {
            return Ok(view.clone());
        }
        let mut known: Vec<&str> = self
            .tables
            .keys()
            .chain(self.views.keys())
            .map(String::as_str)
            .collect();
        known.sort_unstable();
        plan_err!(
            "table '{name}' is not declared (declared: {}); declare it with CREATE TABLE ... WITH ('connector' = ...)",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        &self.planners
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.functions.get(name).cloned()
    }

    fn get_higher_order_meta(&self, _name: &str) -> Option<Arc<HigherOrderUDF>> {
        None
    }

    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        self.aggregates.get(name).cloned()
    }

    fn get_window_meta(&self, name: &str) -> Option<Arc<WindowUDF>> {
        (name.eq_ignore_ascii_case("row_number")).then(crate::functions::row_number)
    }

    fn get_variable_type(&self, _names: &[String]) -> Option<DataType> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        &self.config
    }

    fn udf_names(&self) -> Vec<String> {
        self.functions.keys().cloned().collect()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn udaf_names(&self) -> Vec<String> {
        self.aggregates.keys().cloned().collect()
    }

    fn udwf_names(&self) -> Vec<String> {
        vec!["row_number".to_string()]
    }
}
