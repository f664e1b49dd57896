//! Bounds on what clients send as lookup keys and filters: text length,
//! list length. Checked in the resolver, before any statement, so input
//! out of bounds is `BAD_USER_INPUT` and costs the database nothing.

use crate::error::ApiError;
use crate::query::MAX_LIMIT;

/// The longest e-mail address `userByEmail`, `usersByEmails` and the
/// users' `filter.email` take, in bytes (no valid address is longer).
pub const MAX_EMAIL_BYTES: usize = 320;

/// The longest text any other lookup key or filter takes, in bytes of
/// UTF-8: `groupByExternalId`, `nameContains`, `surnameContains`, a
/// group's `filter.externalId`.
pub const MAX_TEXT_BYTES: usize = 256;

/// `value`, if it is at most `max` bytes and holds no NUL character
/// (which PostgreSQL cannot store in text, so it would match differently
/// per backend); `BAD_USER_INPUT` naming `what` otherwise.
pub(crate) fn text<'a>(what: &str, value: &'a str, max: usize) -> Result<&'a str, ApiError> {
    if value.len() > max {
        return Err(ApiError::bad_input(format!(
            "{what} is {} bytes long; at most {max} are allowed",
            value.len()
        )));
    }
    if value.contains('\0') {
        return Err(ApiError::bad_input(format!(
            "{what} contains a NUL character"
        )));
    }
    Ok(value)
}

/// Checks that a list argument `what` of a lookup has at most
/// [`MAX_LIMIT`] items (`BAD_USER_INPUT` otherwise).
pub(crate) fn list_len(what: &str, len: usize) -> Result<(), ApiError> {
    if len > usize::try_from(MAX_LIMIT).unwrap_or(usize::MAX) {
        return Err(ApiError::bad_input(format!(
            "at most {MAX_LIMIT} {what}, got {len}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_bounded_in_bytes_and_refuses_nul() {
        let at_most = "é".repeat(MAX_TEXT_BYTES / 2);
        assert_eq!(text("x", &at_most, MAX_TEXT_BYTES), Ok(at_most.as_str()));
        let over = format!("{at_most}a");
        assert_eq!(
            text("x", &over, MAX_TEXT_BYTES).map_err(|e| e.code()),
            Err("BAD_USER_INPUT")
        );
        assert_eq!(
            text("x", "a\0b", MAX_TEXT_BYTES).map_err(|e| e.code()),
            Err("BAD_USER_INPUT")
        );
        assert_eq!(text("x", "", MAX_TEXT_BYTES), Ok(""));
    }

    #[test]
    fn lists_take_at_most_the_largest_limit() {
        assert_eq!(list_len("ids", 1000), Ok(()));
        assert_eq!(
            list_len("ids", 1001).map_err(|e| e.code()),
            Err("BAD_USER_INPUT")
        );
    }
}
