//! The spend checks before a run submits anything: can the cap run a single job, and does the
//! account's balance cover the estimate.

use crate::client::RunApi;
use crate::error::{CommandFailure, Exit};
use crate::journal;
use crate::runner::{Dispatcher, JobPhase};
use crate::util::money::Money;
use std::io::Write;

/// Checks the account's balance against what the run would submit. Below it: on a terminal, ask;
/// elsewhere stop with exit 3 unless `--yes`. A service without the route goes on unchecked.
pub(super) async fn balance_covers(
    api: &RunApi,
    yes: bool,
    dispatcher: &Dispatcher,
    estimates: &[Money],
    to_spend: Money,
    stderr: &mut dyn Write,
) -> Option<Exit> {
    use std::io::IsTerminal;
    if yes || to_spend == Money::ZERO {
        return None;
    }
    let balance = match api.balance().await {
        Ok(Some(b)) => b,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(error = %e, "the balance could not be read; going on");
            return None;
        }
    };
    if balance >= to_spend {
        return None;
    }
    let mut queued: Vec<Money> = dispatcher
        .jobs()
        .iter()
        .zip(estimates)
        .filter(|(j, _)| j.phase() == JobPhase::Queued)
        .map(|(_, m)| *m)
        .collect();
    queued.sort();
    let mut covered = 0usize;
    let mut sum = Money::ZERO;
    for price in &queued {
        sum = sum.saturating_add(*price);
        if sum > balance {
            break;
        }
        covered += 1;
    }
    let text = format!(
        "the account's balance ({balance}) covers about {covered} of the {} job(s) to submit (estimated {to_spend})",
        queued.len()
    );
    if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        let _ = write!(stderr, "{text}. Go ahead anyway? [y/N] ");
        let _ = stderr.flush();
        let mut answer = String::new();
        let yes = std::io::stdin().read_line(&mut answer).is_ok()
            && matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes");
        return (!yes).then_some(Exit::Credits);
    }
    let failure = CommandFailure::new(Exit::Credits, text)
        .hint("top the account up, or add --yes to run what it covers (the run stops at the first 402 and resumes later); nothing was created");
    Some(failure.render(stderr))
}

/// Refuses, before anything is written, a cap under which not one of the jobs left could be
/// submitted: it names the smallest cap that runs one and the cap that runs them all.
pub(super) fn cap_can_run_a_job(
    cap: Money,
    plan: &crate::plan::Plan,
    history: &crate::journal::Replayed,
) -> Result<(), CommandFailure> {
    let committed = history.spent.saturating_add(history.reserved);
    // Work already paid for or in flight (re-sends, tasks, downloads) goes on whatever the cap.
    let other_work = plan.jobs.iter().any(|j| {
        history.jobs.get(j.id.as_str()).is_some_and(|f| {
            !matches!(
                f.state(true),
                journal::JobState::Queued | journal::JobState::Done { .. } | journal::JobState::Failed { .. }
            )
        })
    });
    if other_work {
        return Ok(());
    }
    let left: Vec<Money> = plan
        .jobs
        .iter()
        .filter(|j| {
            history
                .jobs
                .get(j.id.as_str())
                .is_none_or(|f| f.state(false) == journal::JobState::Queued)
        })
        .map(|j| j.estimate.cost)
        .collect();
    let Some(cheapest) = left.iter().min().copied() else {
        return Ok(());
    };
    let one = committed.saturating_add(cheapest);
    if one <= cap {
        return Ok(());
    }
    let all = committed.saturating_add(left.iter().copied().sum());
    let spent = if committed > Money::ZERO {
        format!(" ({committed} already billed or reserved in this folder)")
    } else {
        String::new()
    };
    // A new folder: the cap is wrong input (4). A resume: the cap stops it, as it did before (8).
    let exit = if committed > Money::ZERO {
        Exit::SpendCap
    } else {
        Exit::Invalid
    };
    Err(CommandFailure::new(
        exit,
        format!("the spend cap {cap} cannot run a single job: the cheapest costs {cheapest}{spent}"),
    )
    .hint(format!(
        "--max-spend {:.2} runs one job; --max-spend {:.2} runs all {} left; nothing was written or sent",
        one.usd_ceil_cents(),
        all.usd_ceil_cents(),
        left.len()
    )))
}
