//! Applies the model tables to one request body and reports every violation, in the wording the
//! SDKs use (contract §2.2), so manifest errors and simulator 422s read the same.

use super::fields::{FieldType, field};
use super::models::{Bespoke, Cond, Constraint, Lit, ModelSpec, Then, model_spec, models_for};
use super::{Endpoint, o1};
use serde_json::{Map, Value};

/// How to treat fields the contract does not document for a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// The batch runner: an undocumented field is an error, so nothing is paid for a field the
    /// service may silently ignore.
    Client,
    /// The simulator: like the real service as far as it is known, undocumented fields are
    /// ignored and only explicit contract rules reject.
    Server,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViolationKind {
    /// `model` missing, not a string, or not a model of this endpoint.
    Model,
    /// A field this model does not take at all (undocumented, or unknown anywhere).
    NotAccepted,
    /// A field a contract rule rejects for this model.
    Forbidden,
    /// A required field is missing.
    Required,
    /// The value has the wrong JSON type.
    WrongType,
    /// The value is of the right type but not an allowed one (enum, range, length).
    NotAllowed,
    /// A conditional rule, or a bespoke cross-field check, failed.
    Conditional,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// The field at fault; `None` when the problem is the request as a whole.
    pub field: Option<String>,
    pub kind: ViolationKind,
    pub message: String,
    /// The allowed values when the problem is a value outside a fixed set (for did-you-mean).
    pub allowed: Vec<String>,
    /// Fields whose values made a conditional rule apply (the rule's `when`).
    pub related: Vec<String>,
}

impl Violation {
    pub(crate) fn new(field: &str, kind: ViolationKind, message: String) -> Self {
        Violation {
            field: Some(field.to_string()),
            kind,
            message,
            allowed: Vec::new(),
            related: Vec::new(),
        }
    }
    fn with_allowed(mut self, allowed: Vec<String>) -> Self {
        self.allowed = allowed;
        self
    }
}

/// "Present" as the contract means it: not null, not a blank string, not an empty array or object.
/// `false` is present.
pub fn is_present(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

/// Whether `model` on `endpoint` takes `field` at all.
pub fn accepts(endpoint: Endpoint, model: Option<&str>, name: &str) -> bool {
    if name == "model" {
        return endpoint.takes_model();
    }
    model_spec(endpoint, model).is_some_and(|spec| spec.constraint(name).is_some())
}

/// Every violation of the contract in `body`, a request to `endpoint`.
pub fn validate(endpoint: Endpoint, body: &Map<String, Value>, strictness: Strictness) -> Vec<Violation> {
    let mut out = Vec::new();
    let model = if endpoint.takes_model() {
        match body.get("model") {
            Some(Value::String(m)) if !m.trim().is_empty() => Some(m.as_str()),
            Some(v) if is_present(Some(v)) => {
                out.push(Violation::new(
                    "model",
                    ViolationKind::Model,
                    "model must be a string".into(),
                ));
                return out;
            }
            _ => {
                out.push(Violation::new(
                    "model",
                    ViolationKind::Model,
                    "model is required".into(),
                ));
                return out;
            }
        }
    } else {
        None
    };
    let Some(spec) = model_spec(endpoint, model) else {
        let allowed: Vec<String> = models_for(endpoint).into_iter().map(String::from).collect();
        out.push(
            Violation::new(
                "model",
                ViolationKind::Model,
                format!("model must be one of: {}", allowed.join(", ")),
            )
            .with_allowed(allowed),
        );
        return out;
    };
    let model_name = model.unwrap_or("extend_video");

    for (name, value) in body {
        if name == "model" && endpoint.takes_model() {
            continue;
        }
        check_field(spec, model_name, name, value, strictness, &mut out);
    }
    for name in spec.required {
        if !is_present(body.get(*name)) && !already_reported(&out, name) {
            out.push(Violation::new(
                name,
                ViolationKind::Required,
                format!("{name} is required"),
            ));
        }
    }
    for rule in spec.rules {
        if !rule.when.iter().all(|c| holds(c, body)) {
            continue;
        }
        let before = out.len();
        apply_then(&rule.then, rule.message, &describe_when(rule.when), body, &mut out);
        let related: Vec<String> = rule
            .when
            .iter()
            .map(|c| match c {
                Cond::Eq(f, _) | Cond::Present(f, _) => f.to_string(),
            })
            .collect();
        for v in &mut out[before..] {
            v.related.clone_from(&related);
        }
    }
    if spec.bespoke == Bespoke::O1References {
        o1::check(endpoint, body, &mut out);
    }
    out
}

fn already_reported(out: &[Violation], name: &str) -> bool {
    out.iter().any(|v| v.field.as_deref() == Some(name))
}

fn check_field(
    spec: &ModelSpec,
    model: &str,
    name: &str,
    value: &Value,
    strictness: Strictness,
    out: &mut Vec<Violation>,
) {
    if !is_present(Some(value)) {
        return; // compacted away, as the SDKs do before sending
    }
    if spec.forbidden.contains(&name) {
        let message = if spec.endpoint.takes_model() {
            format!("{name} is not allowed when model is {model}")
        } else {
            format!("{name} is not allowed for {}", spec.endpoint)
        };
        out.push(Violation::new(name, ViolationKind::Forbidden, message));
        return;
    }
    let Some(constraint) = spec.constraint(name) else {
        if strictness == Strictness::Client {
            let message = match field(name) {
                Some(_) if spec.endpoint.takes_model() => {
                    format!("{name} is not accepted by {model} on {}", spec.endpoint)
                }
                Some(_) => format!("{name} is not accepted by {}", spec.endpoint),
                None => format!("{name} is not a Kling request field"),
            };
            out.push(Violation::new(name, ViolationKind::NotAccepted, message));
        }
        return;
    };
    let ty = field(name).map_or(FieldType::String, |f| f.ty);
    // For a fixed set of values, "must be one of" says more than "must be a string".
    let is_enum = matches!(constraint, Constraint::Enum(_));
    if let Some(v) = check_type(name, ty, value).filter(|_| !is_enum) {
        out.push(v);
        return;
    }
    if let Some(v) = check_constraint(name, constraint, value) {
        out.push(v);
    }
}

fn check_type(name: &str, ty: FieldType, value: &Value) -> Option<Violation> {
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
            Some(s) if !is_http_url(s) => wrong("an http(s) URL"),
            Some(_) => None,
        },
        FieldType::UrlList => match value.as_array() {
            Some(items) if items.iter().all(|i| i.as_str().is_some_and(is_http_url)) => None,
            _ => wrong("a list of http(s) URLs"),
        },
        FieldType::MultiPrompt => check_multi_prompt(name, value),
        FieldType::Elements => check_elements(name, value),
    }
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

fn check_constraint(name: &str, constraint: Constraint, value: &Value) -> Option<Violation> {
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

fn lit_matches(lit: &Lit, value: Option<&Value>) -> bool {
    match (lit, value) {
        (Lit::Str(s), Some(Value::String(v))) => v == s,
        (Lit::Int(n), Some(v)) => v.as_i64() == Some(*n),
        (Lit::Bool(b), Some(Value::Bool(v))) => v == b,
        _ => false,
    }
}

fn lit_text(lit: &Lit) -> String {
    match lit {
        Lit::Str(s) => s.to_string(),
        Lit::Int(n) => n.to_string(),
        Lit::Bool(b) => b.to_string(),
    }
}

fn holds(cond: &Cond, body: &Map<String, Value>) -> bool {
    match cond {
        Cond::Eq(f, lit) => lit_matches(lit, body.get(*f)),
        Cond::Present(f, want) => is_present(body.get(*f)) == *want,
    }
}

fn describe_when(when: &[Cond]) -> String {
    when.iter()
        .map(|c| match c {
            Cond::Eq(f, lit) => format!("{f} is {}", lit_text(lit)),
            Cond::Present(f, true) => format!("{f} is present"),
            Cond::Present(f, false) => format!("{f} is absent"),
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

fn apply_then(then: &Then, message: Option<&str>, context: &str, body: &Map<String, Value>, out: &mut Vec<Violation>) {
    let when = if context.is_empty() {
        String::new()
    } else {
        format!(" when {context}")
    };
    let say = |generic: String| message.map_or(generic, str::to_string);
    match then {
        Then::Required(fields) => {
            for f in *fields {
                if !is_present(body.get(*f)) && !already_reported(out, f) {
                    out.push(Violation::new(
                        f,
                        ViolationKind::Conditional,
                        say(format!("{f} is required{when}")),
                    ));
                }
            }
        }
        Then::Forbidden(fields) => {
            for f in *fields {
                if is_present(body.get(*f)) && !already_reported(out, f) {
                    out.push(Violation::new(
                        f,
                        ViolationKind::Conditional,
                        say(format!("{f} is not allowed{when}")),
                    ));
                }
            }
        }
        Then::RequiredAny(fields) => {
            if !fields.iter().any(|f| is_present(body.get(*f))) {
                out.push(Violation {
                    field: None,
                    kind: ViolationKind::Conditional,
                    message: say(format!("one of {} is required{when}", fields.join(", "))),
                    allowed: Vec::new(),
                    related: Vec::new(),
                });
            }
        }
        Then::Enum(f, allowed) => {
            let value = body.get(*f);
            if is_present(value) && !allowed.iter().any(|lit| lit_matches(lit, value)) && !already_reported(out, f) {
                let list: Vec<String> = allowed.iter().map(lit_text).collect();
                out.push(
                    Violation::new(
                        f,
                        ViolationKind::Conditional,
                        say(format!("{f} must be one of: {}{when}", list.join(", "))),
                    )
                    .with_allowed(list),
                );
            }
        }
    }
}
