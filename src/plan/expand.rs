//! Manifest ▶ jobs. For each prompt entry, each combination of its template variables, each
//! matrix combination and each sample: merge the request fields (matrix > prompt entry >
//! defaults), check the request against the Kling contract, and name the job.

use super::job::{JobId, JobSpec, Params, RequestBody, request_digest, slug};
use super::matrix::{Combination, combinations};
use super::problems::{describe, duplicate, to_problem};
use super::template::{Template, TemplateError};
use crate::kling::{self, Endpoint, Strictness, ViolationKind, models_for};
use crate::manifest::{
    Diagnostic, Limits, Manifest, OnUnsupported, Origin, Problem, PromptEntry, Sourced, did_you_mean,
};
use crate::money::Money;
use crate::pricing::{Estimate, PriceSource, PriceTable, PricedShape, priced_shape, video_seconds};
use serde::Serialize;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

/// The most jobs one manifest may expand to; larger sweeps are refused before anything is built.
pub const MAX_JOBS: u64 = 1_000_000;
/// Longest readable prefix of a job id taken from prompt text.
const SLUG_LEN: usize = 32;

#[derive(Debug, Clone)]
pub struct Plan {
    pub name: Option<String>,
    pub manifest: PathBuf,
    pub jobs: Vec<JobSpec>,
    /// The swept parameters, in the order the manifest introduces them.
    pub swept: Vec<String>,
    /// Things worth knowing that are not errors (defaults a model does not take, merged jobs).
    pub notes: Vec<String>,
    /// Matrix combinations left out under `on_unsupported: adapt`.
    pub skipped: Vec<Skipped>,
    pub limits: Limits,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    pub prompt: String,
    pub combination: String,
    pub reason: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Layer {
    Defaults,
    Prompt,
    Matrix,
}

/// A request field while a job is put together: borrowed from the manifest unless a template
/// rendered it, so merging costs no copies.
pub(super) struct Field<'a> {
    pub(super) value: Cow<'a, Value>,
    pub(super) origin: &'a Origin,
    pub(super) layer: Layer,
}

pub(super) type Fields<'a> = BTreeMap<&'a str, Field<'a>>;

enum Outcome {
    Job {
        endpoint: Endpoint,
        request: Map<String, Value>,
        adapted: bool,
    },
    Skipped(String),
    Invalid(Vec<Problem>),
}

/// Expands and checks every job of `manifest`, or reports every problem found.
pub fn expand(manifest: &Manifest) -> Result<Plan, Vec<Diagnostic>> {
    let fail = |problems: Vec<Problem>| Err(manifest.sources.resolve(problems));
    let table = PriceTable::with_overrides(manifest.pricing.clone());
    let combos = match combinations(&manifest.matrix, MAX_JOBS) {
        Ok(c) => c,
        Err(p) => return fail(vec![p]),
    };
    let repeat = u64::from(manifest.repeat.get());
    let total = manifest.prompts.iter().try_fold(0u64, |acc, p| {
        let vars = p
            .vars
            .iter()
            .try_fold(1u64, |n, (_, values)| n.checked_mul(values.len() as u64))?;
        acc.checked_add(vars.checked_mul(combos.len() as u64)?.checked_mul(repeat)?)
    });
    let total = match total {
        Some(n) if n <= MAX_JOBS => n as usize,
        _ => {
            let count = total.map_or("more than 2^64".to_string(), |n| n.to_string());
            return fail(vec![
                Problem::new(
                    Origin::File(manifest.path.clone()),
                    format!("the manifest expands to {count} jobs; the limit is {MAX_JOBS}"),
                )
                .hint("narrow the matrix or the variables, or split the sweep into several manifests"),
            ]);
        }
    };

    let swept = swept_names(manifest);
    let mut problems = Vec::new();
    // Sized once: growing by doubling would briefly hold two copies of a large plan.
    let mut jobs: Vec<JobSpec> = Vec::with_capacity(total);
    let mut skipped = Vec::new();
    let mut notes = Notes::default();
    // (request digest, sample) → (index in jobs, whether adaptation produced it)
    let mut seen: HashMap<([u8; 8], u32), (usize, bool)> = HashMap::new();
    // What many jobs share is kept once.
    let mut shapes: HashMap<PricedShape, (Arc<PricedShape>, (Money, PriceSource))> = HashMap::new();
    let mut shared_params: HashMap<String, Params> = HashMap::new();
    let names: HashMap<&str, Arc<str>> = swept.iter().map(|n| (n.as_str(), Arc::from(n.as_str()))).collect();
    let name_of = |n: &str| names.get(n).cloned().unwrap_or_else(|| Arc::from(n));

    for (index, prompt) in manifest.prompts.iter().enumerate() {
        let label: Arc<str> = Arc::from(label_of(prompt));
        let meta = Arc::new(prompt.meta.clone());
        let subject = format!("prompt `{label}`");
        let Some(templates) = templates_of(prompt, &subject, &mut problems) else {
            continue;
        };
        let mut produced = 0usize;
        let mut first_skip: Option<String> = None;
        for assignment in assignments(&prompt.vars) {
            let values: BTreeMap<&str, &str> = assignment.iter().map(|(n, v)| (n.as_str(), v.value.as_str())).collect();
            for combo in &combos {
                let fields = merge(manifest, prompt, &templates, &values, combo);
                match check(fields, manifest.on_unsupported, &subject, &mut notes) {
                    Outcome::Invalid(p) => problems.extend(p),
                    Outcome::Skipped(reason) => {
                        skipped.push(Skipped {
                            prompt: label.to_string(),
                            combination: describe(combo),
                            reason: reason.clone(),
                        });
                        first_skip.get_or_insert(reason);
                    }
                    Outcome::Job {
                        endpoint,
                        request,
                        adapted,
                    } => {
                        let body = RequestBody::new(&request);
                        let digest = request_digest(endpoint, &body);
                        let hash = crate::hex::hex(&digest);
                        let prefix = prompt.id.clone().unwrap_or_else(|| prefix_of(&request));
                        let priced = priced_shape(endpoint, &request);
                        let (priced, rate) = match shapes.get(&priced) {
                            Some(known) => known.clone(),
                            None => {
                                let rate = table.rate(&priced);
                                let known = (Arc::new(priced.clone()), rate);
                                shapes.entry(priced).or_insert(known).clone()
                            }
                        };
                        let estimate = Estimate::at(rate, video_seconds(endpoint, &request));
                        let mut params: Vec<(Arc<str>, Value)> = Vec::new();
                        // What was sent: a key left out under `adapt` has no value here.
                        for (name, _) in &combo.values {
                            let sent = match name.as_str() {
                                "endpoint" => Some(Value::String(endpoint.as_str().into())),
                                _ => request.get(name).cloned(),
                            };
                            params.extend(sent.map(|v| (name_of(name), v)));
                        }
                        for (name, value) in &assignment {
                            params.push((name_of(name), Value::String(value.value.clone())));
                        }
                        let params = Params::new(params);
                        let params = shared_params.entry(params.key()).or_insert(params).clone();
                        drop(request);
                        for sample in 1..=manifest.repeat.get() {
                            let id = JobId::new(&prefix, &hash, sample);
                            if let Some(&(other, other_adapted)) = seen.get(&(digest, sample)) {
                                if adapted || other_adapted {
                                    notes.merged += 1;
                                    continue;
                                }
                                problems.push(duplicate(
                                    prompt,
                                    &subject,
                                    &manifest.prompts[jobs[other].prompt_index],
                                    &jobs[other],
                                ));
                                continue;
                            }
                            seen.insert((digest, sample), (jobs.len(), adapted));
                            jobs.push(JobSpec {
                                id,
                                endpoint,
                                request: body.clone(),
                                priced: priced.clone(),
                                prompt_index: index,
                                label: label.clone(),
                                params: params.clone(),
                                meta: meta.clone(),
                                sample,
                                estimate: estimate.clone(),
                            });
                            produced += 1;
                        }
                    }
                }
            }
        }
        if produced == 0
            && let Some(reason) = first_skip
        {
            problems.push(
                Problem::new(
                    prompt.origin.clone(),
                    "no matrix combination suits this prompt, so it makes no jobs",
                )
                .subject(subject)
                .hint(format!("the first combination was skipped because {reason}")),
            );
        }
    }
    if !problems.is_empty() {
        return fail(problems);
    }
    Ok(Plan {
        name: manifest.name.clone(),
        manifest: manifest.path.clone(),
        jobs,
        swept,
        notes: notes.render(),
        skipped,
        limits: manifest.limits.clone(),
    })
}

#[derive(Default)]
struct Notes {
    /// (field, model or endpoint) → jobs that did not get a default because their model lacks it.
    dropped_defaults: BTreeMap<(String, String), usize>,
    merged: usize,
}

impl Notes {
    fn render(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .dropped_defaults
            .iter()
            .map(|((field, model), n)| {
                format!("defaults.{field} is not sent to {n} job(s) on {model}, which does not take it")
            })
            .collect();
        if self.merged > 0 {
            out.push(format!(
                "{} job(s) became identical once unsupported matrix keys were left out, and were merged",
                self.merged
            ));
        }
        out
    }
}

fn swept_names(manifest: &Manifest) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |n: &str| {
        if !names.iter().any(|x| x == n) {
            names.push(n.to_string());
        }
    };
    for (axis, _) in &manifest.matrix.axes {
        add(axis);
    }
    for entry in &manifest.matrix.include {
        for key in entry.fields.keys() {
            add(key);
        }
    }
    for prompt in &manifest.prompts {
        for (name, _) in &prompt.vars {
            add(name);
        }
    }
    names
}

fn label_of(prompt: &PromptEntry) -> String {
    if let Some(id) = &prompt.id {
        return id.clone();
    }
    let text = prompt.fields.get("prompt").and_then(|p| p.value.as_str()).unwrap_or("");
    let mut short: String = text.chars().filter(|c| !c.is_control()).take(40).collect();
    if text.chars().count() > 40 {
        short.push('…');
    }
    if short.is_empty() { "(no prompt)".into() } else { short }
}

fn prefix_of(request: &Map<String, Value>) -> String {
    let text = request
        .get("prompt")
        .and_then(Value::as_str)
        .or_else(|| request.get("multi_prompt")?.get(0)?.get("prompt")?.as_str())
        .unwrap_or("");
    slug(text, SLUG_LEN)
}

/// Parses the text fields of a templated entry; `None` if a template is unusable.
fn templates_of(
    prompt: &PromptEntry,
    subject: &str,
    problems: &mut Vec<Problem>,
) -> Option<BTreeMap<String, Template>> {
    let mut templates = BTreeMap::new();
    if prompt.vars.is_empty() {
        return Some(templates);
    }
    let before = problems.len();
    let names: Vec<&str> = prompt.vars.iter().map(|(n, _)| n.as_str()).collect();
    let mut used: Vec<String> = Vec::new();
    for (field, value) in &prompt.fields {
        let Some(text) = value.value.as_str() else { continue };
        match Template::parse(text) {
            Ok(t) => {
                for name in t.names() {
                    if names.contains(&name) {
                        used.push(name.to_string());
                    } else {
                        problems.push(
                            Problem::new(
                                value.origin.clone(),
                                format!("{field} uses {{{name}}}, which is not among this entry's vars"),
                            )
                            .subject(subject)
                            .maybe_hint(
                                did_you_mean(name, names.iter().copied()).map(|s| format!("did you mean {{{s}}}?")),
                            )
                            .hint("write {{ and }} for literal braces"),
                        );
                    }
                }
                templates.insert(field.clone(), t);
            }
            Err(TemplateError::StrayBrace { offset }) => problems.push(
                Problem::new(
                    value.origin.clone(),
                    format!(
                        "{field} has a `{{` at character {} that does not start a {{variable}}",
                        offset + 1
                    ),
                )
                .subject(subject)
                .hint("write {{ for a literal brace"),
            ),
        }
    }
    for (name, values) in &prompt.vars {
        if !used.contains(name) {
            let origin = values.first().map_or(prompt.origin.clone(), |v| v.origin.clone());
            problems.push(
                Problem::new(
                    origin,
                    format!("variable `{name}` is not used, so its values would make identical jobs"),
                )
                .subject(subject)
                .hint(format!("write {{{name}}} in the prompt, or remove the variable")),
            );
        }
    }
    (problems.len() == before).then_some(templates)
}

/// Every combination of the variables' values (one empty assignment when there are none).
fn assignments(vars: &[(String, Vec<Sourced<String>>)]) -> Vec<Vec<(String, Sourced<String>)>> {
    let mut out: Vec<Vec<(String, Sourced<String>)>> = vec![Vec::new()];
    for (name, values) in vars {
        out = out
            .iter()
            .flat_map(|prefix| {
                values.iter().map(move |v| {
                    let mut next = prefix.clone();
                    next.push((name.clone(), v.clone()));
                    next
                })
            })
            .collect();
    }
    out
}

fn merge<'a>(
    manifest: &'a Manifest,
    prompt: &'a PromptEntry,
    templates: &BTreeMap<String, Template>,
    values: &BTreeMap<&str, &str>,
    combo: &'a Combination,
) -> Fields<'a> {
    let mut fields = Fields::new();
    let layers = [(Layer::Defaults, &manifest.defaults), (Layer::Prompt, &prompt.fields)];
    for (layer, map) in layers {
        for (name, v) in map {
            let value = match templates.get(name).filter(|_| layer == Layer::Prompt) {
                Some(t) => Cow::Owned(Value::String(t.render(values))),
                None => Cow::Borrowed(&v.value),
            };
            fields.insert(
                name.as_str(),
                Field {
                    value,
                    origin: &v.origin,
                    layer,
                },
            );
        }
    }
    for (name, v) in &combo.values {
        fields.insert(
            name.as_str(),
            Field {
                value: Cow::Borrowed(&v.value),
                origin: &v.origin,
                layer: Layer::Matrix,
            },
        );
    }
    // An explicit null unsets a field from a lower layer.
    fields.retain(|_, f| !f.value.is_null());
    fields
}

fn check(mut fields: Fields<'_>, policy: OnUnsupported, subject: &str, notes: &mut Notes) -> Outcome {
    let endpoint = match fields.remove("endpoint") {
        Some(f) => f
            .value
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(Endpoint::TextToVideo),
        None => Endpoint::TextToVideo,
    };
    let model = fields.get("model").and_then(|f| f.value.as_str()).map(str::to_string);
    let known_model = !endpoint.takes_model() || model.as_deref().is_some_and(|m| models_for(endpoint).contains(&m));
    if known_model {
        let owner = model
            .clone()
            .filter(|_| endpoint.takes_model())
            .unwrap_or_else(|| endpoint.to_string());
        fields.retain(|name, f| {
            let keep = f.layer != Layer::Defaults || kling::accepts(endpoint, model.as_deref(), name);
            if !keep {
                *notes
                    .dropped_defaults
                    .entry((name.to_string(), owner.clone()))
                    .or_default() += 1;
            }
            keep
        });
    }
    let mut adapted = false;
    loop {
        let request: Map<String, Value> = fields
            .iter()
            .map(|(k, f)| (k.to_string(), f.value.as_ref().clone()))
            .collect();
        let violations = kling::validate(endpoint, &request, Strictness::Client);
        if violations.is_empty() {
            return Outcome::Job {
                endpoint,
                request,
                adapted,
            };
        }
        if policy == OnUnsupported::Adapt {
            let from_matrix =
                |fields: &Fields<'_>, name: &str| fields.get(name).is_some_and(|f| f.layer == Layer::Matrix);
            let mut removed = false;
            for v in &violations {
                let Some(name) = v.field.as_deref() else { continue };
                if from_matrix(&fields, name) && matches!(v.kind, ViolationKind::NotAccepted | ViolationKind::Forbidden)
                {
                    fields.remove(name);
                    removed = true;
                }
            }
            if removed {
                adapted = true;
                continue;
            }
            let from_matrix = |name: &str| from_matrix(&fields, name);
            if let Some(v) = violations
                .iter()
                .find(|v| v.field.as_deref().is_some_and(from_matrix) || v.related.iter().any(|r| from_matrix(r)))
            {
                return Outcome::Skipped(v.message.clone());
            }
        }
        let problems = violations
            .iter()
            .map(|v| to_problem(v, endpoint, &fields, subject))
            .collect();
        return Outcome::Invalid(problems);
    }
}
