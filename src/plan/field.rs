//! A request field while a job is put together — its value, where it was written, and which layer
//! (defaults, the prompt entry, the matrix) it came from — shared by expansion and the problems
//! it reports.

use crate::manifest::Origin;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Which layer of the manifest a field came from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Layer {
    Defaults,
    Prompt,
    Matrix,
}

/// A request field while a job is put together: borrowed from the manifest unless a template
/// rendered it, so merging costs no copies.
pub(super) struct Field<'a> {
    pub(super) value: Cow<'a, Value>,
    pub(super) origin: &'a Origin,
    pub(super) layer: Layer,
}

pub(super) type Fields<'a> = BTreeMap<&'a str, Field<'a>>;
