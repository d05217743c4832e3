//! What each job reserves against the cap before its create: the service's price quote for its
//! priced shape (asked once per shape, only for jobs that may still be submitted), never below
//! the built-in price table.

use crate::client::RunApi;
use crate::journal::{self, Replayed};
use crate::plan::Plan;
use crate::util::money::Money;
use std::collections::HashMap;
use std::io::Write;

/// What each job reserves: the service's quote for its priced shape (asked once per shape, and
/// only for jobs that may still be submitted), or the built-in estimate when there is no quote.
pub(super) async fn quote_reservations(
    api: &RunApi,
    plan: &Plan,
    history: &Replayed,
    stderr: &mut dyn Write,
) -> Vec<Money> {
    let mut per_second: HashMap<crate::kling::pricing::PricedShape, Option<f64>> = HashMap::new();
    let mut warned = false;
    let to_submit = |id: &str| {
        history
            .jobs
            .get(id)
            .is_none_or(|h| h.state(false) == journal::JobState::Queued)
    };
    // A step's source task does not exist yet, and a quote for one needs it (contract §15): steps
    // reserve the built-in price (raised to the most the service settles for their shape).
    for job in plan
        .jobs
        .iter()
        .filter(|j| j.parent.is_none() && to_submit(j.id.as_str()))
    {
        if per_second.contains_key(&*job.priced) {
            continue;
        }
        let quoted = match api.quote(job.endpoint, &job.request.fields()).await {
            Ok(total) => Some(total.micro_cents() as f64 / f64::from(job.estimate.seconds.max(1))),
            Err(e) => {
                if !warned {
                    let _ = writeln!(
                        stderr,
                        "warning: price quotes are unavailable ({e}); reserving from the built-in price table"
                    );
                    warned = true;
                }
                None
            }
        };
        per_second.insert((*job.priced).clone(), quoted);
    }
    // A quote is never trusted below the built-in price: a service that quotes a cent would
    // otherwise make the cap meaningless (the dispatcher also raises it to the most it settled).
    plan.jobs
        .iter()
        .map(|job| match per_second.get(&*job.priced).copied().flatten() {
            Some(rate) => {
                Money::from_micro_cents((rate * f64::from(job.estimate.seconds)).ceil() as u64).max(job.estimate.cost)
            }
            None => job.estimate.cost,
        })
        .collect()
}
