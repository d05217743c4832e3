//! `kling-batch plan` and `kling-batch validate`: what a manifest expands to, without spending.

use crate::error::{CommandError, Exit};
use crate::report;
use std::io::Write;
use std::path::Path;

/// `kling-batch plan`: the jobs and their estimated cost, as a table or JSON.
pub(crate) fn plan(
    path: &Path,
    json: bool,
    max_input_bytes: Option<u64>,
    out: &mut dyn Write,
) -> Result<Exit, CommandError> {
    let plan = super::load::load_plan(path, max_input_bytes)?;
    if json {
        report::write_plan_json(&plan, &mut *out)?;
        writeln!(out)?;
    } else {
        out.write_all(report::plan_table(&plan).as_bytes())?;
    }
    Ok(Exit::Success)
}

/// `kling-batch validate`: every problem, or a one-line verdict.
pub(crate) fn validate(path: &Path, max_input_bytes: Option<u64>, out: &mut dyn Write) -> Result<Exit, CommandError> {
    let plan = super::load::load_plan(path, max_input_bytes)?;
    let total: crate::util::money::Money = plan.jobs.iter().map(|j| j.estimate.cost).sum();
    writeln!(
        out,
        "{}: valid — {} job{}, estimated {total}",
        path.display(),
        plan.jobs.len(),
        if plan.jobs.len() == 1 { "" } else { "s" }
    )?;
    Ok(Exit::Success)
}
