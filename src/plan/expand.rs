//! Manifest ▶ jobs. For each prompt entry, each combination of its template variables, each
//! matrix combination and each sample: merge the request fields (matrix > prompt entry >
//! defaults), check the request against the Kling contract, and name the job.

use super::job::{JobId, JobSpec, Params, RequestBody, request_digest, slug};
use super::matrix::{Combination, combinations};
use super::problems::{describe, duplicate, to_problem};
use super::template::{Template, TemplateError};
use crate::kling::pricing::{Estimate, PriceSource, PriceTable, PricedShape, priced_shape, video_seconds};
use crate::kling::{self, Endpoint, Strictness, ViolationKind, models_for};
use crate::manifest::{
    Diagnostic, Limits, Manifest, OnUnsupported, Origin, Problem, PromptEntry, Sourced, did_you_mean,
};
use crate::util::money::Money;
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
    expand_with(manifest, None, CHUNK_JOBS)
}

/// `expand` on `threads` threads (by default: every core, for plans above `PARALLEL_ABOVE` jobs),
/// merging every `chunk_jobs` jobs. The result never depends on either; tests check that.
#[doc(hidden)]
pub fn expand_with(manifest: &Manifest, threads: Option<usize>, chunk_jobs: usize) -> Result<Plan, Vec<Diagnostic>> {
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
    let names: HashMap<&str, Arc<str>> = swept.iter().map(|n| (n.as_str(), Arc::from(n.as_str()))).collect();
    let context = Context {
        manifest,
        combos: &combos,
        table: &table,
        names: &names,
    };
    // Each prompt entry expands on its own, so large manifests use every core: the prompts are
    // cut into contiguous runs of about equal job counts. The order of everything that follows
    // (jobs, problems, skipped combinations) is the manifest's, whatever the split.
    let per_prompt: Vec<u64> = manifest
        .prompts
        .iter()
        .map(|p| {
            p.vars
                .iter()
                .try_fold(1u64, |n, (_, v)| n.checked_mul(v.len() as u64))
                .map_or(u64::MAX, |n| n.saturating_mul(combos.len() as u64))
        })
        .collect();
    let threads = threads.unwrap_or(if total < PARALLEL_ABOVE {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS))
    });
    let mut merged = Merged {
        problems: Vec::new(),
        // Sized once: growing by doubling would briefly hold two copies of a large plan.
        jobs: Vec::with_capacity(total),
        skipped: Vec::new(),
        notes: Notes::default(),
        seen: HashMap::new(),
    };
    // A slice of about CHUNK_JOBS jobs at a time, so what waits to be merged stays small.
    let chunks = split_points(&per_prompt, total.div_ceil(chunk_jobs.max(1)).max(1));
    for chunk in chunks.windows(2) {
        let (start, end) = (chunk[0], chunk[1]);
        let bounds: Vec<usize> = split_points(&per_prompt[start..end], threads)
            .into_iter()
            .map(|b| start + b)
            .collect();
        let parts: Vec<(Vec<Expanded>, Notes)> = std::thread::scope(|scope| {
            let workers: Vec<_> = bounds
                .windows(2)
                .skip(1)
                .map(|w| {
                    let (from, to) = (w[0], w[1]);
                    scope.spawn(move || context.prompts(from, to))
                })
                .collect();
            let mut parts = vec![context.prompts(bounds[0], bounds[1])];
            parts.extend(
                workers
                    .into_iter()
                    .map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e))),
            );
            parts
        });
        for (part, notes) in parts {
            merged.take(manifest, part, notes);
        }
    }
    let Merged {
        problems,
        jobs,
        skipped,
        notes,
        ..
    } = merged;
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

/// The plan as prompts' expansions are folded in, in manifest order.
struct Merged {
    problems: Vec<Problem>,
    jobs: Vec<JobSpec>,
    skipped: Vec<Skipped>,
    notes: Notes,
    /// (request digest, sample) → (index in jobs, whether adaptation produced it)
    seen: HashMap<([u8; 8], u32), (usize, bool)>,
}

impl Merged {
    /// Jobs are compared across prompts in manifest order: the first of two identical requests
    /// stays, a later one is a problem (or merged, when adaptation made them identical).
    fn take(&mut self, manifest: &Manifest, part: Vec<Expanded>, notes: Notes) {
        self.notes.absorb(notes);
        for entry in part {
            let prompt = &manifest.prompts[entry.index];
            let mut produced = 0usize;
            for item in entry.items {
                let candidate = match item {
                    Item::Problems(p) => {
                        self.problems.extend(p);
                        continue;
                    }
                    Item::Skipped(s) => {
                        self.skipped.push(s);
                        continue;
                    }
                    Item::Job(candidate) => candidate,
                };
                let mut body = Some(candidate.body);
                let last = manifest.repeat.get();
                for sample in 1..=last {
                    if let Some(&(other, other_adapted)) = self.seen.get(&(candidate.digest, sample)) {
                        if candidate.adapted || other_adapted {
                            self.notes.merged += 1;
                            continue;
                        }
                        self.problems.push(duplicate(
                            prompt,
                            &entry.subject,
                            &manifest.prompts[self.jobs[other].prompt_index],
                            &self.jobs[other],
                        ));
                        continue;
                    }
                    self.seen
                        .insert((candidate.digest, sample), (self.jobs.len(), candidate.adapted));
                    self.jobs.push(JobSpec {
                        id: JobId::new(&candidate.prefix, &crate::util::hex::hex(&candidate.digest), sample),
                        endpoint: candidate.endpoint,
                        // The last sample takes the text itself (no copy for `repeat: 1`).
                        request: if sample == last { body.take() } else { body.clone() }.unwrap_or_default(),
                        priced: candidate.priced.clone(),
                        prompt_index: entry.index,
                        label: entry.label.clone(),
                        params: candidate.params.clone(),
                        meta: entry.meta.clone(),
                        sample,
                        estimate: candidate.estimate.clone(),
                    });
                    produced += 1;
                }
            }
            if produced == 0
                && let Some(reason) = entry.first_skip
            {
                self.problems.push(
                    Problem::new(
                        prompt.origin.clone(),
                        "no matrix combination suits this prompt, so it makes no jobs",
                    )
                    .subject(entry.subject)
                    .hint(format!("the first combination was skipped because {reason}")),
                );
            }
        }
    }
}

/// Plans smaller than this expand on one thread (a thread costs more than it saves).
const PARALLEL_ABOVE: usize = 20_000;
const MAX_THREADS: usize = 8;
/// Jobs expanded before they are merged into the plan.
const CHUNK_JOBS: usize = 8_192;

/// `threads + 1` prompt indices cutting `weights` into contiguous runs of about equal sums.
fn split_points(weights: &[u64], threads: usize) -> Vec<usize> {
    // u128: a weight may be u64::MAX (a prompt whose variables alone overflow, with no jobs).
    let total: u128 = weights.iter().map(|w| u128::from(*w)).sum();
    let mut bounds = vec![0];
    let mut sum = 0u128;
    for (i, w) in weights.iter().enumerate() {
        sum += u128::from(*w);
        let next = bounds.len() as u128;
        if bounds.len() < threads && sum * threads as u128 >= total * next {
            bounds.push(i + 1);
        }
    }
    bounds.push(weights.len());
    bounds
}

/// What every prompt's expansion reads.
#[derive(Clone, Copy)]
struct Context<'a> {
    manifest: &'a Manifest,
    combos: &'a [Combination],
    table: &'a PriceTable,
    names: &'a HashMap<&'a str, Arc<str>>,
}

/// One prompt entry's jobs before they are compared with other prompts', with what went wrong.
struct Expanded {
    index: usize,
    label: Arc<str>,
    meta: Arc<BTreeMap<String, String>>,
    subject: String,
    items: Vec<Item>,
    first_skip: Option<String>,
}

enum Item {
    Job(Candidate),
    Skipped(Skipped),
    Problems(Vec<Problem>),
}

/// A checked request: one job per sample once it is known to be new.
struct Candidate {
    endpoint: Endpoint,
    body: RequestBody,
    digest: [u8; 8],
    prefix: String,
    priced: Arc<PricedShape>,
    params: Params,
    estimate: Estimate,
    adapted: bool,
}

/// What the jobs of one thread share, kept once.
#[derive(Default)]
struct Interned {
    shapes: HashMap<PricedShape, (Arc<PricedShape>, (Money, PriceSource))>,
    params: HashMap<String, Params>,
}

impl Context<'_> {
    /// Expands prompts `from..to`.
    fn prompts(self, from: usize, to: usize) -> (Vec<Expanded>, Notes) {
        let mut notes = Notes::default();
        let mut interned = Interned::default();
        let out = (from..to)
            .map(|index| self.prompt(index, &mut interned, &mut notes))
            .collect();
        (out, notes)
    }

    fn prompt(self, index: usize, interned: &mut Interned, notes: &mut Notes) -> Expanded {
        let manifest = self.manifest;
        let prompt = &manifest.prompts[index];
        let label: Arc<str> = Arc::from(label_of(prompt));
        let subject = format!("prompt `{label}`");
        let mut entry = Expanded {
            index,
            label,
            meta: Arc::new(prompt.meta.clone()),
            subject,
            items: Vec::new(),
            first_skip: None,
        };
        let mut template_problems = Vec::new();
        let Some(templates) = templates_of(prompt, &entry.subject, &mut template_problems) else {
            entry.items.push(Item::Problems(template_problems));
            return entry;
        };
        let name_of = |n: &str| self.names.get(n).cloned().unwrap_or_else(|| Arc::from(n));
        for assignment in assignments(&prompt.vars) {
            let values: BTreeMap<&str, &str> = assignment.iter().map(|(n, v)| (n.as_str(), v.value.as_str())).collect();
            for combo in self.combos {
                let fields = merge(manifest, prompt, &templates, &values, combo);
                match check(fields, manifest.on_unsupported, &entry.subject, notes) {
                    Outcome::Invalid(p) => entry.items.push(Item::Problems(p)),
                    Outcome::Skipped(reason) => {
                        entry.items.push(Item::Skipped(Skipped {
                            prompt: entry.label.to_string(),
                            combination: describe(combo),
                            reason: reason.clone(),
                        }));
                        entry.first_skip.get_or_insert(reason);
                    }
                    Outcome::Job {
                        endpoint,
                        request,
                        adapted,
                    } => {
                        let body = RequestBody::new(&request);
                        let digest = request_digest(endpoint, &body);
                        let prefix = prompt.id.clone().unwrap_or_else(|| prefix_of(&request));
                        let priced = priced_shape(endpoint, &request);
                        let (priced, rate) = match interned.shapes.get(&priced) {
                            Some(known) => known.clone(),
                            None => {
                                let rate = self.table.rate(&priced);
                                let known = (Arc::new(priced.clone()), rate);
                                interned.shapes.entry(priced).or_insert(known).clone()
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
                        let params = interned.params.entry(params.key()).or_insert(params).clone();
                        entry.items.push(Item::Job(Candidate {
                            endpoint,
                            body,
                            digest,
                            prefix,
                            priced,
                            params,
                            estimate,
                            adapted,
                        }));
                    }
                }
            }
        }
        entry
    }
}

#[derive(Default)]
struct Notes {
    /// (field, model or endpoint) → jobs that did not get a default because their model lacks it.
    dropped_defaults: BTreeMap<(String, String), usize>,
    merged: usize,
}

impl Notes {
    fn absorb(&mut self, other: Notes) {
        for (key, n) in other.dropped_defaults {
            *self.dropped_defaults.entry(key).or_default() += n;
        }
        self.merged += other.merged;
    }

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

#[cfg(test)]
mod tests {
    use super::split_points;

    #[test]
    fn prompts_are_cut_into_runs_of_about_equal_weight() {
        assert_eq!(split_points(&[5, 5, 5, 5], 2), [0, 2, 4]);
        assert_eq!(split_points(&[1, 1, 1, 9], 2), [0, 4, 4]);
        assert_eq!(split_points(&[9, 1, 1, 1], 2), [0, 1, 4]);
        assert_eq!(split_points(&[3, 3, 3], 1), [0, 3]);
        assert_eq!(split_points(&[], 4), [0, 0]);
        // Weights that overflow u64 when added do not panic.
        assert_eq!(split_points(&[u64::MAX, u64::MAX, 1], 2), [0, 2, 3]);
    }
}
