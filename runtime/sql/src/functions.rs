//! Flink's group-window functions and `ROW_NUMBER()`, as placeholders the planner can
//! type-check. They never run: the translation turns a GROUP BY on a group window into a window
//! operator, and a ROW_NUMBER() kept to its first numbers into a Top-N.

use std::sync::Arc;

use arrow_schema::{DataType, Field, FieldRef, TimeUnit};
use datafusion_common::{Result, plan_err};
use datafusion_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion_expr::{
    ColumnarValue, PartitionEvaluator, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility, WindowUDF, WindowUDFImpl,
};

/// `TUMBLE(ts, size)`, `HOP(ts, slide, size)`, `SESSION(ts, gap)`: in GROUP BY they name the
/// window; their value is the window's start.
pub const GROUP_WINDOWS: [&str; 3] = ["tumble", "hop", "session"];

/// `*_END(...)` is planned as `spate_window_end(<the window>)`.
pub const WINDOW_END: &str = "spate_window_end";

#[derive(Debug, PartialEq, Eq, Hash)]
struct WindowPlaceholder {
    name: &'static str,
    signature: Signature,
}

impl ScalarUDFImpl for WindowPlaceholder {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Millisecond, None))
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        plan_err!(
            "{}() can only be used in GROUP BY (and as *_START/*_END in the SELECT list of that query)",
            self.name.to_uppercase()
        )
    }
}

pub fn window_functions() -> Vec<Arc<ScalarUDF>> {
    GROUP_WINDOWS
        .iter()
        .copied()
        .chain([WINDOW_END])
        .map(|name| {
            Arc::new(ScalarUDF::new_from_impl(WindowPlaceholder {
                name,
                signature: Signature::variadic_any(Volatility::Immutable),
            }))
        })
        .collect()
}

/// `ROW_NUMBER()`: a BIGINT, as Flink's.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RowNumber {
    signature: Signature,
}

impl WindowUDFImpl for RowNumber {
    fn name(&self) -> &str {
        "row_number"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn partition_evaluator(
        &self,
        _: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        plan_err!(
            "ROW_NUMBER() runs only as a Top-N: in a subquery whose outer WHERE keeps its first numbers (rn <= N)"
        )
    }

    fn field(&self, args: WindowUDFFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(args.name(), DataType::Int64, false)))
    }
}

pub fn row_number() -> Arc<WindowUDF> {
    Arc::new(WindowUDF::new_from_impl(RowNumber {
        signature: Signature::nullary(Volatility::Immutable),
    }))
}
