//! The plan as a table for people and as JSON for scripts: the jobs, their swept parameters and
//! estimated cost, and totals by model and resolution.

use super::Table;
use crate::kling::Endpoint;
use crate::kling::pricing::{PriceSource, PricedShape};
use crate::plan::{JobSpec, Params, Plan, RequestBody};
use crate::util::money::Money;
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

/// A parameter value as a cell: strings bare, everything else as JSON.
pub(crate) fn cell(value: Option<&Value>) -> String {
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

fn groups(plan: &Plan) -> BTreeMap<Arc<PricedShape>, Group> {
    let mut groups: BTreeMap<Arc<PricedShape>, Group> = BTreeMap::new();
    for job in &plan.jobs {
        let g = groups.entry(job.priced.clone()).or_default();
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

pub(crate) fn plan_table(plan: &Plan) -> String {
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
    if !plan.inputs.files.is_empty() {
        let files = &plan.inputs.files;
        let _ = writeln!(
            out,
            "\nLocal files ({}, {} bytes in all; uploaded when a job that names them is submitted):",
            files.len(),
            plan.inputs.total_bytes()
        );
        for file in files {
            let _ = writeln!(out, "  {} ({} bytes, {:?})", file.written, file.bytes, file.kind);
        }
    }
    let tree = plan.step_tree();
    if !tree.is_empty() {
        let _ = writeln!(
            out,
            "\nSteps (a step runs once for every completed job of the entry it needs; estimated as if all complete):"
        );
        let width = tree
            .iter()
            .map(|r| 2 * r.depth + r.step.chars().count())
            .max()
            .unwrap_or(0);
        for row in &tree {
            let name = format!("{}{}", "  ".repeat(row.depth), row.step);
            let needs = row
                .needs
                .as_ref()
                .map_or(String::new(), |n| format!("  (continues `{n}`)"));
            let _ = writeln!(
                out,
                "  {name:<width$}  {:>7} job{}  {:>10}{needs}",
                row.jobs,
                if row.jobs == 1 { " " } else { "s" },
                row.estimate.to_string()
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

/// `plan --json`, written as it is produced: a 100,000-job plan never exists as one JSON tree.
pub(crate) fn write_plan_json(plan: &Plan, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    serde_json::to_writer_pretty(&mut out, &PlanDoc(plan)).map_err(std::io::Error::from)?;
    std::io::Write::flush(&mut out)
}

struct PlanDoc<'a>(&'a Plan);

impl Serialize for PlanDoc<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let plan = self.0;
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
        // Keys in sorted order, as a JSON object of this project has always been written.
        let mut map = serializer.serialize_map(Some(11))?;
        map.serialize_entry(
            "estimate",
            "costs come from the built-in price table and the manifest's pricing; a run asks the service for a quote",
        )?;
        map.serialize_entry(
            "inputs",
            &json!({"files": plan.inputs.files, "bytes": plan.inputs.total_bytes()}),
        )?;
        map.serialize_entry("jobs", &Jobs(&plan.jobs))?;
        map.serialize_entry(
            "limits",
            &json!({
                "max_spend_usd": plan.limits.max_spend.map(Money::usd),
                "concurrency": plan.limits.concurrency,
                "rate_per_second": plan.limits.rate_per_second,
            }),
        )?;
        map.serialize_entry("manifest", &plan.manifest)?;
        map.serialize_entry("name", &plan.name)?;
        map.serialize_entry("notes", &plan.notes)?;
        map.serialize_entry("skipped", &plan.skipped)?;
        if plan.has_steps() {
            map.serialize_entry("steps", &plan.step_tree())?;
        }
        map.serialize_entry("swept", &plan.swept)?;
        map.serialize_entry(
            "totals",
            &json!({
                "jobs": plan.jobs.len(),
                "video_seconds": plan.jobs.iter().map(|j| u64::from(j.estimate.seconds)).sum::<u64>(),
                "estimated_usd": total_cost.usd(),
                "by_model_and_resolution": by_shape,
            }),
        )?;
        map.end()
    }
}

struct Jobs<'a>(&'a [JobSpec]);

impl Serialize for Jobs<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let jobs = self.0;
        serializer.collect_seq(jobs.iter().map(|job| JobDoc {
            endpoint: job.endpoint,
            estimate: EstimateDoc {
                cents_per_second: job.estimate.per_second.cents(),
                cost_usd: job.estimate.cost.usd(),
                price_source: job.estimate.price_source,
                seconds: job.estimate.seconds,
                seconds_assumed: job.estimate.seconds_assumed,
            },
            id: job.id.as_str(),
            label: &job.label,
            meta: &job.meta,
            model: job.model(),
            params: &job.params,
            parent: job.parent.map(|p| jobs[p].id.as_str()),
            request: &job.request,
            sample: job.sample,
        }))
    }
}

#[derive(Serialize)]
struct JobDoc<'a> {
    endpoint: Endpoint,
    estimate: EstimateDoc,
    id: &'a str,
    label: &'a str,
    meta: &'a BTreeMap<String, String>,
    model: Option<&'a str>,
    params: &'a Params,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<&'a str>,
    request: &'a RequestBody,
    sample: u32,
}

#[derive(Serialize)]
struct EstimateDoc {
    cents_per_second: f64,
    cost_usd: f64,
    price_source: PriceSource,
    seconds: u32,
    seconds_assumed: bool,
}
