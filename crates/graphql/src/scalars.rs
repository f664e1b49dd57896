//! The `DateTime` scalar and `ID` parsing.

use async_graphql::{ID, InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::{SecondsFormat, Utc};

use crate::error::ApiError;

/// `DateTime`: RFC 3339 in UTC with microseconds, e.g.
/// `2026-11-22T10:30:15.123456Z`. Any RFC 3339 offset is accepted on
/// input (and converted to UTC); anything else is `BAD_USER_INPUT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DateTime(pub chrono::DateTime<Utc>);

impl DateTime {
    /// The RFC 3339 text this scalar is written as.
    pub fn to_rfc3339(self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

#[Scalar(name = "DateTime")]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        let Value::String(text) = &value else {
            return Err(InputValueError::expected_type(value));
        };
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| DateTime(t.with_timezone(&Utc)))
            .map_err(|e| InputValueError::custom(format!("not an RFC 3339 date-time: {e}")))
    }

    fn is_valid(value: &Value) -> bool {
        matches!(value, Value::String(text) if chrono::DateTime::parse_from_rfc3339(text).is_ok())
    }

    fn to_value(&self) -> Value {
        Value::String(self.to_rfc3339())
    }
}

/// The 64-bit id an `ID` names; `BAD_USER_INPUT` if it is not one.
pub(crate) fn parse_id(id: &ID) -> Result<i64, ApiError> {
    id.parse::<i64>().map_err(|_| {
        ApiError::bad_input(format!(
            "invalid ID {:?}: expected a 64-bit integer",
            id.as_str()
        ))
    })
}

/// The `ID` of a row id.
pub(crate) fn to_id(id: i64) -> ID {
    ID(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_round_trips_with_microseconds_in_utc() {
        let parsed = <DateTime as ScalarType>::parse(Value::String(
            "2026-11-22T12:30:15.123456+02:00".into(),
        ))
        .expect("valid");
        assert_eq!(parsed.to_rfc3339(), "2026-11-22T10:30:15.123456Z");
    }

    #[test]
    fn datetime_refuses_other_text() {
        assert!(<DateTime as ScalarType>::parse(Value::String("yesterday".into())).is_err());
        assert!(!<DateTime as ScalarType>::is_valid(&Value::Number(
            1.into()
        )));
    }

    #[test]
    fn ids_must_be_integers() {
        assert_eq!(parse_id(&ID("42".into())), Ok(42));
        assert_eq!(
            parse_id(&ID("abc".into())).map_err(|e| e.code()),
            Err("BAD_USER_INPUT")
        );
    }
}
