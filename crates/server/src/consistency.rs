//! Causal consistency over HTTP: a request that wrote answers with the
//! primary's commit position (`x-roster-position` and
//! `extensions.consistency.position`); a later request that sends it back
//! in `x-roster-after` reads data that includes that write, from a replica
//! that has applied it or else from the primary.

use async_graphql::{BatchResponse, Name, Value};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use roster_store::{CommitPosition, ReadFrom};

/// The request header carrying a commit position the reads must include.
pub const AFTER_HEADER: &str = "x-roster-after";

/// The response header carrying the commit position of a request's writes.
pub const POSITION_HEADER: &str = "x-roster-position";

/// [`AFTER_HEADER`] as a header name.
pub(crate) fn after_header() -> HeaderName {
    HeaderName::from_static(AFTER_HEADER)
}

/// [`POSITION_HEADER`] as a header name.
pub(crate) fn position_header() -> HeaderName {
    HeaderName::from_static(POSITION_HEADER)
}

/// The position in `x-roster-after`, if the request sent one; `Err` with
/// what is wrong when it is not a position (sent once, readable, parsable).
pub(crate) fn requested(headers: &HeaderMap) -> Result<Option<CommitPosition>, String> {
    let mut values = headers.get_all(AFTER_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(format!("{AFTER_HEADER} was sent more than once"));
    }
    let text = value
        .to_str()
        .map_err(|_| format!("{AFTER_HEADER} is not visible ASCII"))?;
    text.trim()
        .parse()
        .map(Some)
        .map_err(|e| format!("{AFTER_HEADER}: {e}"))
}

/// What a request learned about consistency, for its answer.
#[derive(Debug, Default)]
pub(crate) struct Consistency {
    /// The primary's position after the request's writes, if it wrote.
    pub(crate) position: Option<CommitPosition>,
    /// Where reads went, reported when the client asked for a position.
    pub(crate) read_from: Option<ReadFrom>,
}

impl Consistency {
    /// Adds `extensions.consistency` to every response of `batch`.
    pub(crate) fn annotate(&self, batch: &mut BatchResponse) {
        if self.position.is_none() && self.read_from.is_none() {
            return;
        }
        let mut object = async_graphql::indexmap::IndexMap::new();
        if let Some(position) = &self.position {
            object.insert(Name::new("position"), Value::String(position.to_string()));
        }
        if let Some(from) = self.read_from {
            object.insert(Name::new("readFrom"), Value::String(from.as_str().into()));
        }
        let value = Value::Object(object);
        match batch {
            BatchResponse::Single(one) => {
                one.extensions.insert("consistency".into(), value);
            }
            BatchResponse::Batch(many) => {
                for one in many {
                    one.extensions.insert("consistency".into(), value.clone());
                }
            }
        }
    }

    /// The `x-roster-position` header, if the request wrote.
    pub(crate) fn header(&self) -> Option<HeaderValue> {
        let position = self.position.as_ref()?;
        HeaderValue::from_str(&position.to_string()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_after_header_must_be_one_valid_position() {
        let mut headers = HeaderMap::new();
        assert_eq!(requested(&headers), Ok(None));
        headers.insert(AFTER_HEADER, HeaderValue::from_static("pg:1:0/16B3F08"));
        assert_eq!(
            requested(&headers),
            Ok(Some(CommitPosition::Postgres {
                timeline: 1,
                lsn: 0x16B_3F08
            }))
        );
        headers.insert(AFTER_HEADER, HeaderValue::from_static("pg:1:0/zz"));
        assert!(requested(&headers).is_err());
        headers.insert(AFTER_HEADER, HeaderValue::from_static("pg:1:0/1"));
        headers.append(AFTER_HEADER, HeaderValue::from_static("pg:1:0/2"));
        assert!(
            requested(&headers)
                .expect_err("sent twice")
                .contains("more than once")
        );
    }
}
