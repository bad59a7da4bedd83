//! The one rule for control characters in text input, applied by the JSON body and query
//! extractors (and the CSV import) so that no handler can forget it, and both backends answer
//! alike: PostgreSQL cannot store NUL in text at all, SQLite would store it silently.
//!
//! - NUL (U+0000) is refused in every string.
//! - The other C0 controls (U+0001–U+001F) are refused too, except tab, line feed and carriage
//!   return in the multi-line free-text fields ([`MULTI_LINE_FIELDS`]: descriptions, notes,
//!   reasons, a biography, a postal address).
//! - Single-line fields (names, titles, emails, ISBNs, query parameters, object keys…) take no
//!   control character at all, not even a tab.
//!
//! A field is multi-line when the last name of its path is listed: `lines[0].note` is a `note`.
//! DEL and the C1 controls are left alone: they are valid text on both backends.

use crate::error::{ApiError, FieldError};
use serde_json::Value;

/// The free-text fields that may hold tabs and line breaks, by the last name of their path.
pub const MULTI_LINE_FIELDS: [&str; 6] =
    ["address", "bio", "description", "note", "notes", "reason"];

/// What a text field may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// No control character at all.
    SingleLine,
    /// Tab, line feed and carriage return allowed; other controls refused.
    MultiLine,
    /// A password: hashed, never stored or shown, so only NUL is refused (a password someone
    /// chose with a tab in it must keep working).
    Secret,
}

impl TextKind {
    /// The kind of the field at `path` (`title`, `lines[2].note`, `event_types[0]`).
    pub fn of_field(path: &str) -> TextKind {
        let last = path.rsplit('.').next().unwrap_or(path);
        let name = last.split('[').next().unwrap_or(last);
        if MULTI_LINE_FIELDS.contains(&name) {
            TextKind::MultiLine
        } else if name.ends_with("password") {
            TextKind::Secret
        } else {
            TextKind::SingleLine
        }
    }
}

/// Why `text` is refused as a value of this kind, or `None` when it is acceptable.
pub fn refusal(text: &str, kind: TextKind) -> Option<String> {
    let bad = text.chars().find(|&c| match (c, kind) {
        ('\0', _) => true,
        (_, TextKind::Secret) => false,
        ('\t' | '\n' | '\r', _) => kind == TextKind::SingleLine,
        (c, _) => c.is_ascii_control() && c != '\u{7f}',
    })?;
    Some(match (bad, kind) {
        ('\0', _) => "must not contain the NUL character (U+0000)".to_owned(),
        (c, TextKind::SingleLine) => format!(
            "must not contain control characters (found U+{:04X}); tabs and line breaks are \
             allowed only in free-text fields such as descriptions and notes",
            u32::from(c)
        ),
        (c, TextKind::MultiLine | TextKind::Secret) => format!(
            "must not contain control characters other than tab, line feed and carriage return \
             (found U+{:04X})",
            u32::from(c)
        ),
    })
}

/// Checks one named field, as a validation error naming it.
pub fn check_field(field: &str, text: &str) -> Result<(), FieldError> {
    match refusal(text, TextKind::of_field(field)) {
        Some(message) => Err(FieldError::new(field, message)),
        None => Ok(()),
    }
}

/// Checks every string (and object key) of a parsed JSON body; the errors name each offending
/// string by its path (`title`, `lines[0].note`).
pub fn check_json(value: &Value) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    walk(value, &mut String::new(), &mut errors);
    into_result(errors)
}

fn walk(value: &Value, path: &mut String, errors: &mut Vec<FieldError>) {
    match value {
        Value::String(text) => {
            let field = if path.is_empty() {
                "body"
            } else {
                path.as_str()
            };
            if let Err(e) = check_field(field, text) {
                errors.push(e);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(item, path, errors);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                if refusal(key, TextKind::SingleLine).is_some() {
                    let field = if path.is_empty() {
                        "body"
                    } else {
                        path.as_str()
                    };
                    errors.push(FieldError::new(
                        field,
                        "a property name contains a control character",
                    ));
                    continue;
                }
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                walk(item, path, errors);
                path.truncate(len);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Checks every name and value of a query string (all single-line); the errors name the
/// parameter (`q`).
pub fn check_query(query: &str) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if let Some(message) = refusal(&name, TextKind::SingleLine) {
            errors.push(FieldError::new(
                "query",
                format!("a parameter name {message}"),
            ));
        } else if let Some(message) = refusal(&value, TextKind::SingleLine) {
            errors.push(FieldError::new(name.into_owned(), message));
        }
    }
    into_result(errors)
}

fn into_result(errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn fields(result: Result<(), ApiError>) -> Vec<String> {
        match result {
            Ok(()) => Vec::new(),
            Err(ApiError::Validation(errors)) => errors.into_iter().map(|e| e.field).collect(),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn kinds_follow_the_last_name_of_the_path() {
        assert_eq!(TextKind::of_field("title"), TextKind::SingleLine);
        assert_eq!(TextKind::of_field("description"), TextKind::MultiLine);
        assert_eq!(TextKind::of_field("lines[0].note"), TextKind::MultiLine);
        assert_eq!(TextKind::of_field("notes"), TextKind::MultiLine);
        assert_eq!(
            TextKind::of_field("shipping_address.line1"),
            TextKind::SingleLine
        );
        assert_eq!(TextKind::of_field("event_types[3]"), TextKind::SingleLine);
        assert_eq!(TextKind::of_field("reason[1]"), TextKind::MultiLine);
        assert_eq!(TextKind::of_field("new_password"), TextKind::Secret);
        assert!(refusal("tab\tin a password", TextKind::Secret).is_none());
        assert!(refusal("nul\0in a password", TextKind::Secret).is_some());
    }

    #[test]
    fn tabs_and_line_breaks_only_in_free_text() {
        assert!(refusal("two\nlines\r\n\tindented", TextKind::MultiLine).is_none());
        assert!(refusal("a\tb", TextKind::SingleLine).is_some());
        assert!(refusal("a\nb", TextKind::SingleLine).is_some());
        assert!(refusal("bell\u{7}", TextKind::MultiLine).is_some());
        assert!(refusal("escape\u{1b}[31m", TextKind::MultiLine).is_some());
        assert!(refusal("del\u{7f} and C1\u{85} are text", TextKind::SingleLine).is_none());
        assert!(refusal("Émile Zola — 東京", TextKind::SingleLine).is_none());
    }

    #[test]
    fn json_errors_name_the_path() {
        let body = json!({
            "title": "ok",
            "lines": [{"note": "fine\nline"}, {"note": "a\u{0}b"}],
            "event_types": ["order.created", "x\ty"],
            "description": "tab\tis fine here",
            "name": "a\u{1}b"
        });
        let mut got = fields(check_json(&body));
        got.sort();
        assert_eq!(got, ["event_types[1]", "lines[1].note", "name"]);
        assert_eq!(fields(check_json(&json!({"a\u{0}": 1}))), ["body"]);
        assert_eq!(fields(check_json(&json!("a\u{0}"))), ["body"]);
    }

    #[test]
    fn query_errors_name_the_parameter() {
        assert_eq!(fields(check_query("q=a%00b&page=1")), ["q"]);
        assert_eq!(fields(check_query("q=a%09b")), ["q"]);
        assert_eq!(fields(check_query("q%00=1")), ["query"]);
        assert!(fields(check_query("q=caf%C3%A9+cr%C3%A8me&sort=-title")).is_empty());
    }

    proptest! {
        #[test]
        fn any_string_with_a_nul_is_refused(
            before in ".*",
            after in ".*",
            multi in any::<bool>(),
        ) {
            let kind = if multi { TextKind::MultiLine } else { TextKind::SingleLine };
            let text = format!("{before}\u{0}{after}");
            prop_assert!(refusal(&text, kind).is_some());
            let field = if multi { "note" } else { "title" };
            let body = json!({ field: text });
            prop_assert_eq!(fields(check_json(&body)), vec![field.to_owned()]);
        }

        #[test]
        fn any_printable_string_is_accepted(text in "\\PC*", multi in any::<bool>()) {
            let kind = if multi { TextKind::MultiLine } else { TextKind::SingleLine };
            prop_assert!(refusal(&text, kind).is_none());
            let body = json!({"title": text, "lines": [{"note": text}]});
            prop_assert!(check_json(&body).is_ok());
        }
    }
}
