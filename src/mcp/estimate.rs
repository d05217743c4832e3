//! The estimate a human is shown before approving a sweep an agent planned. The agent writes the
//! manifest, so the manifest's own `pricing:` may raise a job's price but never lower it below the
//! built-in table (RunAPI's published prices, or the tool's stated assumption where it has none);
//! each model's figure says where it came from.

use crate::kling::pricing::{Estimate, PriceSource, builtin_rate};
use crate::plan::{JobSpec, Plan};
use crate::util::money::Money;
use serde_json::{Value, json};
use std::collections::BTreeMap;

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
    sources: Vec<PriceSource>,
    /// Jobs whose manifest price was below the built-in one (and was not used).
    lowered: usize,
}

/// What one job is shown at, and from where.
fn job(job: &JobSpec) -> (Money, PriceSource, bool) {
    let builtin = Estimate::at(
        builtin_rate(&job.priced),
        (job.estimate.seconds, job.estimate.seconds_assumed),
    );
    if job.estimate.cost >= builtin.cost {
        (job.estimate.cost, job.estimate.price_source, false)
    } else {
        (builtin.cost, builtin.price_source, true)
    }
}

impl Shown {
    pub(super) fn of(plan: &Plan) -> Shown {
        let mut by_model: BTreeMap<String, Model> = BTreeMap::new();
        let mut total = Money::ZERO;
        for spec in &plan.jobs {
            let (cost, source, lowered) = job(spec);
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

fn source_words(source: PriceSource) -> &'static str {
    match source {
        PriceSource::Snapshot => "RunAPI's published prices (built in)",
        PriceSource::Assumed => "assumed by kling-batch (not published; built in)",
        PriceSource::Manifest => "the manifest's pricing: (above the built-in price)",
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
        let builtin = Shown::of(&plan(base));
        let cheap = plan(&format!(
            "{base}pricing:\n  - model: kling-3.0\n    cents_per_second: 1\n"
        ));
        assert!(
            cheap.jobs.iter().map(|j| j.estimate.cost).sum::<Money>() < builtin.total,
            "the manifest's own estimate is lower"
        );
        let shown = Shown::of(&cheap);
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
        let dear = Shown::of(&plan(&format!(
            "{base}pricing:\n  - model: kling-3.0\n    cents_per_second: 100\n"
        )));
        assert!(dear.total > builtin.total, "a higher price raises it");
        assert!(
            dear.by_model()[0]["price_from"]
                .as_str()
                .is_some_and(|n| n.contains("manifest"))
        );
    }
}
