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
    folder: Option<&Path>,
    out: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<Exit, crate::error::CommandFailure> {
    let mut plan = super::load::load_plan(path, max_input_bytes).map_err(CommandError::from)?;
    if !plan.choices.is_empty() {
        // Steps with `only:`: chosen from the run folder's reviews, as a run there would.
        let history = match folder {
            Some(dir) if dir.join(crate::output::folder::JOURNAL).is_file() => {
                crate::journal::read_replayed(&dir.join(crate::output::folder::JOURNAL))
                    .map(|(h, _)| h)
                    .map_err(|e| crate::error::CommandFailure::new(Exit::Failure, &e).hint(e.hint()))?
            }
            _ => crate::journal::Replayed::default(),
        };
        let chosen = crate::review::verdicts::choose(&mut plan, folder, &history)
            .map_err(|e| crate::error::CommandFailure::new(Exit::Invalid, e))?;
        for line in crate::review::verdicts::describe(&chosen) {
            let _ = writeln!(stderr, "{line}");
        }
        if folder.is_none() {
            let _ = writeln!(
                stderr,
                "note: steps with `only:` run for the parents a run's reviews choose (`kling-batch review`); give --out DIR to see a run's choice"
            );
        }
    }
    let out_result = |e: std::io::Error| crate::error::CommandFailure::from(CommandError::from(e));
    if json {
        report::write_plan_json(&plan, &mut *out).map_err(out_result)?;
        writeln!(out).map_err(out_result)?;
    } else {
        out.write_all(report::plan_table(&plan).as_bytes())
            .map_err(out_result)?;
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
