//! Value checks for single fields: JSON type, URL shape, multi-shot items, elements, and the
//! enum/range/length constraints of the model tables.

use super::fields::FieldType;
use super::models::Constraint;
use super::violation::{Violation, ViolationKind};
use serde_json::Value;

pub(super) fn check_type(name: &str, ty: FieldType, value: &Value) -> Option<Violation> {
    let wrong = |what: &str| {
        Some(Violation::new(
            name,
            ViolationKind::WrongType,
            format!("{name} must be {what}"),
        ))
    };
    match ty {
        FieldType::String => (!value.is_string()).then(|| wrong("a string")).flatten(),
        FieldType::Integer => (value.as_i64().is_none()).then(|| wrong("an integer")).flatten(),
        FieldType::Boolean => (!value.is_boolean()).then(|| wrong("a boolean")).flatten(),
        FieldType::Number => (!value.is_number()).then(|| wrong("a number")).flatten(),
        FieldType::Url => match value.as_str() {
            None => wrong("a URL string"),
            Some(s) if !is_http_url(s) && !is_local_placeholder(s) => wrong("an http(s) URL or a local file"),
            Some(_) => None,
        },
        FieldType::UrlList => match value.as_array() {
            Some(items)
                if items
                    .iter()
                    .all(|i| i.as_str().is_some_and(|s| is_http_url(s) || is_local_placeholder(s))) =>
            {
                None
            }
            _ => wrong("a list of http(s) URLs or local files"),
        },
        FieldType::MultiPrompt => check_multi_prompt(name, value),
        FieldType::Elements => check_elements(name, value),
    }
}

/// A local file in a planned request, named by its content until it is uploaded (the service
/// never sees one: the simulator refuses it).
pub(crate) fn is_local_placeholder(s: &str) -> bool {
    s.strip_prefix(super::LOCAL_FILE_PLACEHOLDER)
        .is_some_and(|hash| hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
}

pub(crate) fn is_http_url(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let rest = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/') && !s.chars().any(char::is_whitespace))
}

/// Multi-shot items: `prompt` 1–500 characters and `duration_seconds` 1–12 (contract §2.3).
fn check_multi_prompt(name: &str, value: &Value) -> Option<Violation> {
    let Some(items) = value.as_array() else {
        return Some(Violation::new(
            name,
            ViolationKind::WrongType,
            format!("{name} must be a list of shots"),
        ));
    };
    for (i, item) in items.iter().enumerate() {
        let problem = match item.as_object() {
            None => Some("must be a mapping with prompt and duration_seconds".to_string()),
            Some(shot) => match (shot.get("prompt"), shot.get("duration_seconds")) {
                (Some(Value::String(p)), _) if p.trim().is_empty() || p.chars().count() > 500 => {
                    Some("prompt must be between 1 and 500 characters".into())
                }
                (Some(Value::String(_)), Some(d)) => match d.as_i64() {
                    Some(1..=12) => None,
                    Some(_) => Some("duration_seconds must be between 1 and 12".into()),
                    None => Some("duration_seconds must be an integer".into()),
                },
                (Some(Value::String(_)), None) => Some("duration_seconds is required".into()),
                _ => Some("prompt is required".into()),
            },
        };
        if let Some(p) = problem {
            let kind = if item.is_object() {
                ViolationKind::NotAllowed
            } else {
                ViolationKind::WrongType
            };
            return Some(Violation::new(name, kind, format!("{name}[{i}].{p}")));
        }
    }
    None
}

fn check_elements(name: &str, value: &Value) -> Option<Violation> {
    let Some(items) = value.as_array() else {
        return Some(Violation::new(
            name,
            ViolationKind::WrongType,
            format!("{name} must be a list of elements"),
        ));
    };
    for (i, item) in items.iter().enumerate() {
        let named = item
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.trim().is_empty());
        if !named {
            return Some(Violation::new(
                name,
                ViolationKind::NotAllowed,
                format!("{name}[{i}].name is required"),
            ));
        }
    }
    None
}

pub(super) fn check_constraint(name: &str, constraint: Constraint, value: &Value) -> Option<Violation> {
    match constraint {
        Constraint::Any => None,
        Constraint::Enum(allowed) => {
            let ok = value.as_str().is_some_and(|s| allowed.contains(&s));
            (!ok).then(|| {
                Violation::new(
                    name,
                    ViolationKind::NotAllowed,
                    format!("{name} must be one of: {}", allowed.join(", ")),
                )
                .with_allowed(allowed.iter().map(|s| s.to_string()).collect())
            })
        }
        Constraint::Ints(allowed) => {
            let ok = value.as_i64().is_some_and(|n| allowed.contains(&n));
            let list: Vec<String> = allowed.iter().map(i64::to_string).collect();
            (!ok).then(|| {
                Violation::new(
                    name,
                    ViolationKind::NotAllowed,
                    format!("{name} must be one of: {}", list.join(", ")),
                )
                .with_allowed(list)
            })
        }
        Constraint::IntRange(min, max) => {
            let ok = value.as_i64().is_some_and(|n| (min..=max).contains(&n));
            (!ok).then(|| {
                Violation::new(
                    name,
                    ViolationKind::NotAllowed,
                    format!("{name} must be between {min} and {max}"),
                )
            })
        }
        Constraint::Chars(min, max) => {
            let len = value.as_str().map_or(0, |s| s.chars().count());
            (!(min..=max).contains(&len)).then(|| {
                Violation::new(
                    name,
                    ViolationKind::NotAllowed,
                    format!("{name} must be between {min} and {max} characters (it has {len})"),
                )
            })
        }
        Constraint::Items(min, max) => {
            let len = value.as_array().map_or(0, Vec::len);
            (!(min..=max).contains(&len)).then(|| {
                let message = if max == usize::MAX {
                    format!("{name} must contain at least {min} item(s)")
                } else {
                    format!("{name} must contain between {min} and {max} items")
                };
                Violation::new(name, ViolationKind::NotAllowed, message)
            })
        }
    }
}
