//! `lastchange`: microsecond truncation, the next value of a row's version,
//! and how a timestamp is written and compared on each backend.
//!
//! SQLite keeps timestamps as text. sqlx writes `chrono` values with as many
//! fraction digits as needed (`…:05+00:00`, `…:05.1+00:00`), so text order is
//! not time order; the store writes the fixed-width form
//! `YYYY-MM-DDTHH:MM:SS.ffffff+00:00` instead, and compares against both forms
//! so rows written by other tools still match.

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{ColumnTrait, Condition, DbBackend};

/// `t` truncated to whole microseconds: the precision every backend stores.
///
/// ```
/// use chrono::{TimeZone, Timelike, Utc};
/// let t = Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap();
/// assert_eq!(roster_store::truncate_to_micros(t).nanosecond(), 123_456_000);
/// ```
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// The `lastchange` a successful update writes: `max(now, expected + 1 µs)`,
/// in microseconds, so a row's version strictly increases even when the
/// clock stands still or goes back.
pub(crate) fn next(expected: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    let floor = truncate_to_micros(expected) + TimeDelta::microseconds(1);
    truncate_to_micros(now).max(floor)
}

/// The fixed-width text SQLite stores.
pub(crate) fn sqlite_text(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// The form sqlx writes for a `chrono` value on SQLite (rows not written by
/// the store).
fn sqlx_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

/// `t` (already truncated) as the value to write on `backend`.
pub(crate) fn value(backend: DbBackend, t: DateTime<Utc>) -> SimpleExpr {
    match backend {
        DbBackend::Sqlite => Expr::val(sqlite_text(t)),
        _ => Expr::val(t),
    }
}

/// `column = t` on `backend` (on SQLite: either text form).
pub(crate) fn equals<C: ColumnTrait>(backend: DbBackend, column: C, t: DateTime<Utc>) -> Condition {
    match backend {
        DbBackend::Sqlite => {
            let fixed = sqlite_text(t);
            let loose = sqlx_text(t);
            if fixed == loose {
                Condition::all().add(column.eq(fixed))
            } else {
                Condition::all().add(column.is_in([fixed, loose]))
            }
        }
        _ => Condition::all().add(column.eq(t)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn next_is_strictly_after_expected_even_when_the_clock_is_behind() {
        let expected = Utc.timestamp_opt(1_000, 5_000).unwrap();
        let behind = Utc.timestamp_opt(999, 0).unwrap();
        assert_eq!(
            next(expected, behind),
            Utc.timestamp_opt(1_000, 6_000).unwrap()
        );
        assert_eq!(
            next(expected, expected),
            Utc.timestamp_opt(1_000, 6_000).unwrap()
        );
        let ahead = Utc.timestamp_opt(2_000, 123_456_789).unwrap();
        assert_eq!(
            next(expected, ahead),
            Utc.timestamp_opt(2_000, 123_456_000).unwrap()
        );
    }

    #[test]
    fn sqlite_text_is_fixed_width_and_orders_like_time() {
        let a = Utc.timestamp_opt(1_700_000_000, 500_000_000).unwrap();
        let b = Utc.timestamp_opt(1_700_000_000, 123_456_000).unwrap();
        let c = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let texts = [sqlite_text(a), sqlite_text(b), sqlite_text(c)];
        assert!(texts.iter().all(|t| t.len() == 32), "{texts:?}");
        assert!(texts[2] < texts[1] && texts[1] < texts[0]);
        assert_eq!(texts[1], "2023-11-14T22:13:20.123456+00:00");
        // The loose form is what sqlx writes; it parses back to the same time.
        assert_eq!(DateTime::parse_from_rfc3339(&sqlx_text(b)).unwrap(), b);
    }
}
