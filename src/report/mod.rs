//! What users see of a plan (and, later, of a run): text tables and JSON. Consumers only: this
//! module never decides anything.

mod plan;
mod table;

pub use plan::{plan_json, plan_table};
pub use table::Table;
