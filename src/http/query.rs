//! Typed query parameters shared by the list endpoints: values from a fixed set (statuses, kinds,
//! sort orders) and time-range bounds. The query structs hold these types, so the OpenAPI
//! document (an `enum`, a `format`) and what the server accepts come from one definition; a
//! value outside the set is a 422 naming the parameter (through [`crate::http::ApiQuery`]).

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};
use serde::de::{Deserializer, Error as _};
use serde::Deserialize;
use std::borrow::Cow;
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

/// A value from a fixed set of names.
pub trait OneOf: Sized + Copy + 'static {
    /// Every value, in the order an error message lists them.
    fn all() -> &'static [Self];
    fn as_str(self) -> &'static str;
    /// The message for a value outside the set.
    fn expected() -> String {
        let names: Vec<&str> = Self::all().iter().map(|v| v.as_str()).collect();
        format!("must be one of {}", names.join(", "))
    }
}

/// `deserialize_with` for an optional query parameter whose value is one of `T`'s names
/// (surrounding blanks ignored); anything else fails with [`OneOf::expected`].
pub fn one_of<'de, D: Deserializer<'de>, T: OneOf>(d: D) -> Result<Option<T>, D::Error> {
    let raw = Cow::<str>::deserialize(d)?;
    let raw = raw.trim();
    T::all()
        .iter()
        .copied()
        .find(|v| v.as_str() == raw)
        .map(Some)
        .ok_or_else(|| D::Error::custom(T::expected()))
}

/// Declares a query enum: the Rust type, its names (also its OpenAPI `enum`) and [`OneOf`].
/// (The names are `tt`, not `literal`: utoipa does not see a `rename` wrapped in a macro group.)
#[macro_export]
macro_rules! query_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:tt ),+ $(,)? }
        $(expected = $expected:expr)?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant ),+
        }

        impl $crate::http::query::OneOf for $name {
            fn all() -> &'static [Self] {
                &[$($name::$variant),+]
            }
            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
            $(fn expected() -> String {
                String::from($expected)
            })?
        }
    };
}

/// A bound of a time range in a query: an RFC 3339 instant, or a date that stands for its
/// start (`from`) or its end (`to`), UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBound {
    At(NaiveDateTime),
    Day(NaiveDate),
}

impl TimeBound {
    const EXPECTED: &'static str =
        "must be an RFC 3339 time (2026-11-25T10:00:00Z) or a date (2026-11-25)";

    pub fn parse(raw: &str) -> Option<TimeBound> {
        let raw = raw.trim();
        if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
            return Some(TimeBound::At(at.naive_utc()));
        }
        NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .ok()
            .map(TimeBound::Day)
    }

    /// The first instant of the range (inclusive).
    pub fn start(self) -> NaiveDateTime {
        match self {
            TimeBound::At(at) => at,
            TimeBound::Day(day) => day.and_time(NaiveTime::MIN),
        }
    }

    /// The end of the range and whether it is inclusive: an instant includes itself; a date
    /// runs up to, not including, the next midnight (`None` past the last representable day).
    pub fn end(self) -> Option<(NaiveDateTime, bool)> {
        match self {
            TimeBound::At(at) => Some((at, true)),
            TimeBound::Day(day) => day
                .succ_opt()
                .map(|next| (next.and_time(NaiveTime::MIN), false)),
        }
    }
}

/// A bound of a time filter in SQL terms: the instant, and whether it is included.
pub type SqlBound = (NaiveDateTime, bool);

/// The `from`/`to` filters of a list as SQL bounds; a `to` day past the calendar's end is a 422
/// naming `to`.
pub fn time_range(
    from: Option<TimeBound>,
    to: Option<TimeBound>,
) -> Result<(Option<SqlBound>, Option<SqlBound>), crate::error::ApiError> {
    let to = to
        .map(|bound| {
            bound
                .end()
                .ok_or_else(|| crate::error::ApiError::invalid("to", "is out of range"))
        })
        .transpose()?;
    Ok((from.map(|bound| (bound.start(), true)), to))
}

impl<'de> Deserialize<'de> for TimeBound {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Cow::<str>::deserialize(d)?;
        TimeBound::parse(&raw).ok_or_else(|| D::Error::custom(TimeBound::EXPECTED))
    }
}

impl PartialSchema for TimeBound {
    fn schema() -> RefOr<Schema> {
        let string = |format| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(format)))
        };
        AnyOfBuilder::new()
            .item(string(KnownFormat::DateTime))
            .item(string(KnownFormat::Date))
            .description(Some(
                "An RFC 3339 time, or a date (from its start for `from`, to its end for `to`, UTC)",
            ))
            .into()
    }
}

impl ToSchema for TimeBound {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_bounds_take_instants_and_dates() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap_or_default();
        assert_eq!(TimeBound::parse(" 2026-11-25 "), Some(TimeBound::Day(day)));
        assert_eq!(
            TimeBound::parse("2026-11-25T10:00:00+01:00").map(TimeBound::start),
            day.and_hms_opt(9, 0, 0)
        );
        assert_eq!(
            TimeBound::Day(day).end(),
            Some((
                day.and_hms_opt(0, 0, 0).unwrap_or_default() + chrono::Days::new(1),
                false
            ))
        );
        assert_eq!(TimeBound::parse("yesterday"), None);
        assert_eq!(TimeBound::Day(NaiveDate::MAX).end(), None);
    }
}
