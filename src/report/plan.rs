//! The plan as a table for people and as JSON for scripts: the jobs, their swept parameters and
//! estimated cost, and totals by model and resolution.

use super::Table;
use crate::money::Money;
use crate::plan::Plan;
use crate::pricing::{PriceSource, PricedShape, priced_shape};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write;

/// A parameter value as a cell: strings bare, everything else as JSON.
pub fn cell(value: Option<&Value>) -> String {
    match value {
        None => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

#[derive(Default)]
struct Group {
    jobs: u64,
    seconds: u64,
    cost: Money,
    assumed_price: bool,
    assumed_seconds: bool,
}

fn groups(plan: &Plan) -> BTreeMap<PricedShape, Group> {
    let mut groups: BTreeMap<PricedShape, Group> = BTreeMap::new();
    for job in &plan.jobs {
        let g = groups.entry(priced_shape(job.endpoint, &job.request)).or_default();
        g.jobs += 1;
        g.seconds += u64::from(job.estimate.seconds);
        g.cost = g.cost.saturating_add(job.estimate.cost);
        g.assumed_price |= job.estimate.price_source == PriceSource::Assumed;
        g.assumed_seconds |= job.estimate.seconds_assumed;
    }
    groups
}

fn marks(assumed_price: bool, assumed_seconds: bool) -> &'static str {
    match (assumed_price, assumed_seconds) {
        (true, true) => " *†",
        (true, false) => " *",
        (false, true) => " †",
        (false, false) => "",
    }
}

pub fn plan_table(plan: &Plan) -> String {
    let mut out = String::new();
    let total_cost: Money = plan.jobs.iter().map(|j| j.estimate.cost).sum();
    let total_seconds: u64 = plan.jobs.iter().map(|j| u64::from(j.estimate.seconds)).sum();
    let title = plan.name.as_deref().unwrap_or("plan");
    let _ = writeln!(out, "{title} ({})", plan.manifest.display());
    let _ = writeln!(
        out,
        "{} job{} · {total_seconds} s of video · estimated {total_cost}\n",
        plan.jobs.len(),
        if plan.jobs.len() == 1 { "" } else { "s" }
    );

    let mut header: Vec<String> = vec!["JOB".into(), "ENDPOINT".into(), "MODEL".into()];
    header.extend(plan.swept.iter().filter(|s| *s != "model" && *s != "endpoint").cloned());
    header.extend(["SECONDS".into(), "EST. COST".into()]);
    let mut right = vec![false; header.len()];
    let n = right.len();
    right[n - 2] = true;
    right[n - 1] = true;
    let mut table = Table::new(header, right);
    for job in &plan.jobs {
        let mut row = vec![
            job.id.to_string(),
            job.endpoint.to_string(),
            job.model().unwrap_or("-").to_string(),
        ];
        for name in plan.swept.iter().filter(|s| *s != "model" && *s != "endpoint") {
            row.push(cell(job.params.get(name)));
        }
        let e = &job.estimate;
        row.push(format!("{}{}", e.seconds, if e.seconds_assumed { "†" } else { "" }));
        row.push(format!(
            "{}{}",
            e.cost,
            if e.price_source == PriceSource::Assumed {
                "*"
            } else {
                ""
            }
        ));
        table.push(row);
    }
    out.push_str(&table.render(""));

    let _ = writeln!(out, "\nEstimated spend by model and resolution");
    let mut totals = Table::new(
        [
            "ENDPOINT",
            "MODEL",
            "RESOLUTION",
            "SOUND",
            "JOBS",
            "SECONDS",
            "EST. COST",
        ]
        .map(String::from)
        .to_vec(),
        vec![false, false, false, false, true, true, true],
    );
    let mut any_assumed_price = false;
    let mut any_assumed_seconds = false;
    for (shape, g) in groups(plan) {
        any_assumed_price |= g.assumed_price;
        any_assumed_seconds |= g.assumed_seconds;
        totals.push(vec![
            shape.endpoint.to_string(),
            shape.model.clone().unwrap_or_else(|| "-".into()),
            shape.output_resolution.clone().unwrap_or_else(|| "-".into()),
            if shape.enable_sound { "yes" } else { "no" }.into(),
            g.jobs.to_string(),
            g.seconds.to_string(),
            format!("{}{}", g.cost, marks(g.assumed_price, g.assumed_seconds)),
        ]);
    }
    totals.push(vec![
        "total".into(),
        String::new(),
        String::new(),
        String::new(),
        plan.jobs.len().to_string(),
        total_seconds.to_string(),
        total_cost.to_string(),
    ]);
    out.push_str(&totals.render("  "));
    let _ = writeln!(
        out,
        "\nCosts are estimates from the built-in price table (RunAPI's published snapshot, cents per second \
         by model, resolution and sound){}; a run asks the service for a quote first.",
        if plan
            .jobs
            .iter()
            .any(|j| j.estimate.price_source == PriceSource::Manifest)
        {
            " with this manifest's `pricing:`"
        } else {
            ""
        }
    );
    if any_assumed_price {
        let _ = writeln!(
            out,
            "  * price not published for this model: assumed from the nearest published one"
        );
    }
    if any_assumed_seconds {
        let _ = writeln!(out, "  † length set by the input media: assumed at its longest");
    }
    let limits = &plan.limits;
    let mut parts = Vec::new();
    if let Some(m) = limits.max_spend {
        parts.push(format!("max spend {m}"));
    }
    if let Some(c) = limits.concurrency {
        parts.push(format!("concurrency {c}"));
    }
    if let Some(r) = limits.rate_per_second {
        parts.push(format!("{r} requests/s"));
    }
    if !parts.is_empty() {
        let _ = writeln!(out, "Limits: {}", parts.join(" · "));
        if let Some(m) = limits.max_spend
            && total_cost > m
        {
            let _ = writeln!(
                out,
                "  the estimate is above max spend: a run will stop submitting at {m}"
            );
        }
    }
    for note in &plan.notes {
        let _ = writeln!(out, "Note: {note}");
    }
    if !plan.skipped.is_empty() {
        let _ = writeln!(out, "\nSkipped under on_unsupported: adapt ({}):", plan.skipped.len());
        for s in &plan.skipped {
            let _ = writeln!(out, "  {} with {}: {}", s.prompt, s.combination, s.reason);
        }
    }
    out
}

pub fn plan_json(plan: &Plan) -> Value {
    let jobs: Vec<Value> = plan
        .jobs
        .iter()
        .map(|job| {
            let e = &job.estimate;
            json!({
                "id": job.id,
                "endpoint": job.endpoint,
                "model": job.model(),
                "label": job.label,
                "sample": job.sample,
                "params": job.params,
                "meta": job.meta,
                "request": job.request,
                "estimate": {
                    "seconds": e.seconds,
                    "seconds_assumed": e.seconds_assumed,
                    "cents_per_second": e.per_second.cents(),
                    "cost_usd": e.cost.usd(),
                    "price_source": e.price_source,
                },
            })
        })
        .collect();
    let by_shape: Vec<Value> = groups(plan)
        .into_iter()
        .map(|(shape, g)| {
            json!({
                "endpoint": shape.endpoint,
                "model": shape.model,
                "output_resolution": shape.output_resolution,
                "enable_sound": shape.enable_sound,
                "jobs": g.jobs,
                "video_seconds": g.seconds,
                "estimated_usd": g.cost.usd(),
                "assumed_price": g.assumed_price,
                "assumed_seconds": g.assumed_seconds,
            })
        })
        .collect();
    let total_cost: Money = plan.jobs.iter().map(|j| j.estimate.cost).sum();
    json!({
        "name": plan.name,
        "manifest": plan.manifest,
        "swept": plan.swept,
        "jobs": jobs,
        "totals": {
            "jobs": plan.jobs.len(),
            "video_seconds": plan.jobs.iter().map(|j| u64::from(j.estimate.seconds)).sum::<u64>(),
            "estimated_usd": total_cost.usd(),
            "by_model_and_resolution": by_shape,
        },
        "limits": {
            "max_spend_usd": plan.limits.max_spend.map(Money::usd),
            "concurrency": plan.limits.concurrency,
            "rate_per_second": plan.limits.rate_per_second,
        },
        "notes": plan.notes,
        "skipped": plan.skipped,
        "estimate": "costs come from the built-in price table and the manifest's pricing; a run asks the service for a quote",
    })
}
