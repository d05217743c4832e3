//! What users see of a plan (and, later, of a run): text tables and JSON. Consumers only: this
//! module never decides anything.

mod gallery;
mod plan;
mod progress;
mod results;
mod status;
mod summary;
mod table;

pub use gallery::{Axes, escape, parse_axes, write_gallery};
pub use plan::{cell, plan_table, write_plan_json};
pub use progress::{Progress, Snapshot, print_line, write_stderr};
pub use results::{NOT_IN_MANIFEST, Removed, inert, removed_paid, write_results_csv};
pub use status::{Failure, NextSteps, RunStatus};
pub use summary::{RunSummary, render_summary};
pub use table::Table;
