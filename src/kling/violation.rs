//! What a check of a request reports (a violation, its kind) and what "present" means for a
//! field: the words every check — the model tables, the types, the O1 reference rules — shares.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ViolationKind {
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
pub(crate) struct Violation {
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
    pub(crate) fn with_allowed(mut self, allowed: Vec<String>) -> Self {
        self.allowed = allowed;
        self
    }
}

/// "Present" as the contract means it: not null, not a blank string, not an empty array or object.
/// `false` is present.
pub(crate) fn is_present(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}
