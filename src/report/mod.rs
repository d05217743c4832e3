//! What users see of a plan (and, later, of a run): text tables and JSON. Consumers only: this
//! module never decides anything.

mod gallery;
mod plan;
mod progress;
mod results;
mod status;
mod summary;
mod table;

pub(crate) use gallery::{Axes, parse_axes, write_gallery};
pub(crate) use plan::{cell, plan_table, write_plan_json};
pub(crate) use progress::{Progress, Snapshot};
pub(crate) use results::{Removed, Verdict, Verdicts, inert, is_own_column, removed_paid, write_results_csv};
#[cfg(test)]
pub(crate) use status::NextSteps;
pub(crate) use status::{RunStatus, Spend};
pub(crate) use summary::{RunSummary, render_summary};
pub(crate) use table::Table;
