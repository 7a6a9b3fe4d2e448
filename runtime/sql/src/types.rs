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
