//! The estimate a human is shown before approving a sweep an agent planned. The agent writes the
//! manifest, so the manifest's own `pricing:` may raise a job's price but never lower it below the
//! built-in table (RunAPI's published prices, or the tool's stated assumption where it has none)
//! or below the service's live quote; each model's figure says where it came from.

use crate::client::RunApi;
use crate::kling::pricing::{Estimate, PriceSource, PricedShape, builtin_rate};
use crate::plan::{JobSpec, Plan};
use crate::util::money::Money;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The service's live quotes: µ¢ per second of video, by priced shape.
pub(super) type Quotes = HashMap<PricedShape, u64>;

/// Where a job's price came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum From {
    Table(PriceSource),
    Quote,
}

/// How long the quotes of one plan may take in all (they only ever raise an estimate).
const QUOTES_WITHIN: Duration = Duration::from_secs(15);

/// The service's quote for each priced shape of `plan` (a step's needs its source task, so steps
/// are left to the table). A shape the service does not quote in time is left out: the estimate
/// is then the table's, never lower.
pub(super) async fn live_quotes(api: &RunApi, plan: &Plan) -> Quotes {
    let mut quotes = Quotes::new();
    let asking = async {
        for job in plan.jobs.iter().filter(|j| j.parent.is_none()) {
            if quotes.contains_key(&*job.priced) {
                continue;
            }
            if let Ok(total) = api.quote(job.endpoint, &job.request.fields()).await {
                let rate = total.micro_cents().div_ceil(u64::from(job.estimate.seconds.max(1)));
                quotes.insert((*job.priced).clone(), rate);
            }
        }
    };
    let _ = tokio::time::timeout(QUOTES_WITHIN, asking).await;
    quotes
}

/// A plan's estimate as shown for approval.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Shown {
    pub(super) total: Money,
    by_model: BTreeMap<String, Model>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Model {
    jobs: usize,
    cost: Money,
    sources: Vec<From>,
    /// Jobs whose manifest price was below the built-in one (and was not used).
    lowered: usize,
}

/// What one job is shown at, and from where: the highest of the manifest's price, the built-in
/// one and the live quote; and whether the manifest's was below the built-in one.
fn job(job: &JobSpec, quotes: &Quotes) -> (Money, From, bool) {
    let builtin = Estimate::at(
        builtin_rate(&job.priced),
        (job.estimate.seconds, job.estimate.seconds_assumed),
    );
    let lowered = job.estimate.cost < builtin.cost;
    let (mut cost, mut from) = if lowered {
        (builtin.cost, From::Table(builtin.price_source))
    } else {
        (job.estimate.cost, From::Table(job.estimate.price_source))
    };
    if let Some(rate) = quotes.get(&*job.priced) {
        let quoted = Money::from_micro_cents(rate.saturating_mul(u64::from(job.estimate.seconds)));
        if quoted > cost {
            (cost, from) = (quoted, From::Quote);
        }
    }
    (cost, from, lowered)
}

impl Shown {
    /// The estimate shown for `plan`, given the service's live quotes (none: the tables alone,
    /// the floor any approved estimate must stand on).
    pub(super) fn of(plan: &Plan, quotes: &Quotes) -> Shown {
        let mut by_model: BTreeMap<String, Model> = BTreeMap::new();
        let mut total = Money::ZERO;
        for spec in &plan.jobs {
            let (cost, source, lowered) = job(spec, quotes);
            total = total.saturating_add(cost);
            let model = by_model
                .entry(spec.model().unwrap_or(spec.endpoint.as_str()).to_string())
                .or_default();
            model.jobs += 1;
            model.cost = model.cost.saturating_add(cost);
            model.lowered += usize::from(lowered);
            if !model.sources.contains(&source) {
                model.sources.push(source);
            }
        }
        Shown { total, by_model }
    }

    /// Each model's jobs, estimate and the source of its price, for the human to read.
    pub(super) fn by_model(&self) -> Vec<Value> {
        self.by_model
            .iter()
            .map(|(name, m)| {
                let sources: Vec<&str> = m.sources.iter().map(|s| source_words(*s)).collect();
                let mut entry = json!({
                    "model": name,
                    "jobs": m.jobs,
                    "estimate_usd": m.cost.usd(),
                    "price_from": sources.join("; "),
                });
                if m.lowered > 0 {
                    entry["note"] = Value::String(format!(
                        "the manifest's pricing: is below the built-in price for {} job(s); the built-in price is shown",
                        m.lowered
                    ));
                }
                entry
            })
            .collect()
    }
}

fn source_words(source: From) -> &'static str {
    match source {
        From::Quote => "RunAPI's live quote (above the built-in price)",
        From::Table(PriceSource::Snapshot) => "RunAPI's published prices (built in)",
        From::Table(PriceSource::Assumed) => "assumed by kling-batch (not published; built in)",
        From::Table(PriceSource::Manifest) => "the manifest's pricing: (above the built-in price)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(yaml: &str) -> Plan {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.yaml");
        std::fs::write(&path, yaml).unwrap();
        crate::commands::load::load_plan(&path, None).unwrap()
    }

    #[test]
    fn a_manifest_may_raise_a_price_but_never_lower_the_one_shown() {
        let base = "defaults: { model: kling-3.0, duration_seconds: 5 }\nprompts: [\"a\", \"b\"]\n";
        let none = Quotes::new();
        let builtin = Shown::of(&plan(base), &none);
        let cheap = plan(&format!(
            "{base}pricing:\n  - model: kling-3.0\n    cents_per_second: 1\n"
        ));
        assert!(
            cheap.jobs.iter().map(|j| j.estimate.cost).sum::<Money>() < builtin.total,
            "the manifest's own estimate is lower"
        );
        let shown = Shown::of(&cheap, &none);
        assert_eq!(shown.total, builtin.total, "the estimate shown is not lowered");
        let models = shown.by_model();
        assert!(
            models[0]["note"]
                .as_str()
                .is_some_and(|n| n.contains("below the built-in")),
            "{models:?}"
        );
        assert!(
            models[0]["price_from"]
                .as_str()
                .is_some_and(|n| n.contains("RunAPI's published"))
        );
        let dear = Shown::of(
            &plan(&format!(
                "{base}pricing:\n  - model: kling-3.0\n    cents_per_second: 100\n"
            )),
            &none,
        );
        assert!(dear.total > builtin.total, "a higher price raises it");
        assert!(
            dear.by_model()[0]["price_from"]
                .as_str()
                .is_some_and(|n| n.contains("manifest"))
        );
    }
}
