//! The request vocabulary of RunAPI's Kling endpoints, as data: endpoints, fields, per-model
//! constraints and conditional rules (contract §2), and one validator that applies them.
//!
//! This module owns no I/O and knows nothing about manifests or HTTP. The manifest layer uses it
//! (strictly) to reject a job before anything is spent; the simulator uses it (tolerantly) to
//! answer 400/422 the way the real service does.

mod checks;
pub(crate) mod continuation;
mod endpoint;
mod fields;
pub(crate) mod models;
mod o1;
pub(crate) mod pricing;
pub(crate) mod request;
mod validate;
mod violation;

pub(crate) use checks::is_http_url;

/// What a job's request holds in place of a local file until it is uploaded (`inputs` makes it,
/// the client replaces it): part of the request vocabulary, so validation knows it.
pub const LOCAL_FILE_PLACEHOLDER: &str = "kb-local://";
pub(crate) use endpoint::Endpoint;
pub(crate) use fields::{FIELDS, FieldType, field, is_request_key};
pub(crate) use models::{MODEL_NAMES, model_spec, models_for};
pub(crate) use validate::{Strictness, accepts, validate};
pub(crate) use violation::{Violation, ViolationKind};
