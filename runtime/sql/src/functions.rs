//! Flink's group-window functions, as placeholders the planner can type-check. They never run:
//! the translation turns a GROUP BY on them into a window operator.

use std::sync::Arc;

use arrow_schema::{DataType, TimeUnit};
use datafusion_common::{Result, plan_err};
use datafusion_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
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
