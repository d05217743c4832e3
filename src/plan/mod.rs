//! Expansion: a validated manifest becomes the list of jobs it describes, each checked against the
//! Kling contract, with a stable id and a cost estimate. Pure: no I/O, no clock, no randomness,
//! so the same manifest content (and local files, gathered before by `crate::inputs`) always
//! gives the same plan.

mod digest;
mod expand;
mod field;
mod job;
mod matrix;
mod only;
mod problems;
mod template;
mod tree;

pub use digest::ApprovedPlan;
pub use expand::{
    MAX_JOBS, PARENT_SCHEME, Plan, Skipped, expand, expand_with, expand_with_inputs, fill_parent, parent_of_request,
};
pub use job::{JobId, JobSpec, Params, RequestBody, canonical_json, slug};
pub use matrix::{Combination, combinations};
pub use only::{Choice, Chosen, Compare, Judged, Only};
pub use template::{Template, TemplateError};
pub use tree::StepCount;
