use arrow_schema::{DataType, TimeUnit};
use datafusion_sql::sqlparser::ast::{DataType as SqlType, ExactNumberInfo, TimezoneInfo};

/// Flink SQL's types as Arrow types; `None` for a type Spate does not support.
pub fn arrow_type(sql: &SqlType) -> Option<DataType> {
    Some(match sql {
        SqlType::TinyInt(_) => DataType::Int8,
        SqlType::SmallInt(_) => DataType::Int16,
        SqlType::Int(_) | SqlType::Integer(_) => DataType::Int32,
        SqlType::BigInt(_) => DataType::Int64,
        SqlType::Float(_) | SqlType::Real => DataType::Float32,
        SqlType::Double(_) | SqlType::DoublePrecision => DataType::Float64,
        SqlType::Boolean | SqlType::Bool => DataType::Boolean,
        SqlType::Varchar(_)
        | SqlType::String(_)
        | SqlType::Char(_)
        | SqlType::Text
        | SqlType::CharVarying(_) => DataType::Utf8,
        SqlType::Date => DataType::Date32,
        // Flink's TIMESTAMP(3) is what event time uses; other precisions keep their unit.
        SqlType::Timestamp(precision, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => {
            match precision {
                None | Some(3) => DataType::Timestamp(TimeUnit::Millisecond, None),
                Some(0) => DataType::Timestamp(TimeUnit::Second, None),
                Some(6) => DataType::Timestamp(TimeUnit::Microsecond, None),
                Some(9) => DataType::Timestamp(TimeUnit::Nanosecond, None),
                Some(_) => return None,
            }
        }
        SqlType::Decimal(info) | SqlType::Numeric(info) | SqlType::Dec(info) => match info {
            ExactNumberInfo::PrecisionAndScale(p, s) if *p <= 38 => {
                DataType::Decimal128(*p as u8, *s as i8)
            }
            ExactNumberInfo::Precision(p) if *p <= 38 => DataType::Decimal128(*p as u8, 0),
            ExactNumberInfo::None => DataType::Decimal128(10, 0),
            _ => return None,
        },
        _ => return None,
    })
}

/// Whether a query column of type `from` may be written into a sink column of type `to`:
/// Flink's implicit casts (`LogicalTypeCasts.supportsImplicitCast`), which its INSERT applies
/// and beyond which it refuses the statement: integers and floats only widen, strings stay
/// strings, timestamps change precision. One addition: a float into a DECIMAL column, since
/// Spate types decimal arithmetic (`0.908 * price`) as DOUBLE where Flink types it DECIMAL.
pub fn writes_into(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    /// Rank in Flink's order of widening numeric types.
    fn rank(data_type: &DataType) -> Option<u8> {
        Some(match data_type {
            Int8 => 1,
            Int16 => 2,
            Int32 => 3,
            Int64 => 4,
            Decimal128(..) | Decimal256(..) => 5,
            Float32 => 6,
            Float64 => 7,
            _ => return None,
        })
    }
    match (from, to) {
        _ if from == to => true,
        (Null, _) => true,
        (Utf8 | LargeUtf8 | Utf8View, Utf8 | LargeUtf8 | Utf8View) => true,
        (Timestamp(_, None), Timestamp(_, None)) => true,
        (Timestamp(_, None), Date32) => true,
        (Float32 | Float64, Decimal128(..) | Decimal256(..)) => true,
        _ => matches!((rank(from), rank(to)), (Some(f), Some(t)) if f <= t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinks_take_what_flink_casts_implicitly() {
        use DataType::*;
        let ms = Timestamp(TimeUnit::Millisecond, None);
        let us = Timestamp(TimeUnit::Microsecond, None);
        for (from, to) in [
            (Int32, Int64),
            (Int64, Float64),
            (Int64, Decimal128(23, 3)),
            (Float32, Float64),
            (Float64, Decimal128(23, 3)),
            (Utf8View, Utf8),
            (Null, Int32),
            (ms.clone(), us.clone()),
            (us, Date32),
        ] {
            assert!(writes_into(&from, &to), "{from} into {to}");
        }
        for (from, to) in [
            (Utf8, Int64),
            (Int64, Int32),
            (Float64, Int64),
            (Float64, Float32),
            (Int64, Utf8),
            (Boolean, Int32),
            (ms, Int64),
        ] {
            assert!(!writes_into(&from, &to), "{from} into {to}");
        }
    }
}
