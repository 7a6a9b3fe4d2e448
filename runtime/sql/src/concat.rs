//! `CONCAT(s1, s2, ...)` as Flink defines it: the strings joined, NULL when any of them is NULL
//! (DataFusion's CONCAT skips NULLs, which is `CONCAT_WS`'s behaviour in Flink), and strings
//! only: Flink refuses other types at planning, so Spate does too rather than cast them.

use std::sync::Arc;

use arrow_array::Array;
use arrow_array::builder::StringBuilder;
use arrow_schema::DataType;
use datafusion_common::cast::as_string_array;
use datafusion_common::{Result, plan_err};
use datafusion_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

pub fn concat() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(Concat {
        // The types are checked and cast by `coerce_types`.
        signature: Signature::user_defined(Volatility::Immutable),
    }))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Concat {
    signature: Signature,
}

impl ScalarUDFImpl for Concat {
    fn name(&self) -> &str {
        "concat"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, given: &[DataType]) -> Result<Vec<DataType>> {
        if given.is_empty() {
            return plan_err!("CONCAT(s1, s2, ...) takes at least one argument");
        }
        given
            .iter()
            .enumerate()
            .map(|(i, given)| match given {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
                    Ok(DataType::Utf8)
                }
                other => plan_err!(
                    "CONCAT(s1, s2, ...): argument {} is {other}, not a string (cast it, as \
                     Flink asks too)",
                    i + 1
                ),
            })
            .collect()
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = args
            .args
            .iter()
            .map(|arg| arg.to_array(args.number_rows))
            .collect::<Result<Vec<_>>>()?;
        let strings = arrays
            .iter()
            .map(|a| as_string_array(a))
            .collect::<Result<Vec<_>>>()?;
        let mut out = StringBuilder::with_capacity(args.number_rows, 0);
        let mut joined = String::new();
        for row in 0..args.number_rows {
            if strings.iter().any(|s| s.is_null(row)) {
                out.append_null();
                continue;
            }
            joined.clear();
            for s in &strings {
                joined.push_str(s.value(row));
            }
            out.append_value(&joined);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::StringArray;
    use arrow_schema::Field;
    use datafusion_common::ScalarValue;
    use datafusion_common::config::ConfigOptions;

    use super::*;

    #[test]
    fn a_null_argument_makes_the_result_null() {
        let column =
            ColumnarValue::Array(Arc::new(StringArray::from(vec![Some("a"), None, Some("")])));
        let suffix = ColumnarValue::Scalar(ScalarValue::Utf8(Some("-x".into())));
        let args = ScalarFunctionArgs {
            args: vec![column, suffix],
            arg_fields: vec![
                Arc::new(Field::new("c", DataType::Utf8, true)),
                Arc::new(Field::new("s", DataType::Utf8, false)),
            ],
            number_rows: 3,
            return_field: Arc::new(Field::new("concat", DataType::Utf8, true)),
            config_options: Arc::new(ConfigOptions::default()),
        };
        let ColumnarValue::Array(out) = concat().invoke_with_args(args).unwrap() else {
            panic!("an array");
        };
        let out = as_string_array(&out).unwrap();
        let rows: Vec<Option<&str>> = out.iter().collect();
        assert_eq!(rows, [Some("a-x"), None, Some("-x")]);
    }

    #[test]
    fn other_types_are_refused() {
        let err = concat()
            .coerce_types(&[DataType::Utf8, DataType::Int64])
            .unwrap_err()
            .to_string();
        assert!(err.contains("argument 2 is Int64"), "{err}");
    }
}
