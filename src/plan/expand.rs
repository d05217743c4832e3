//! Manifest ▶ jobs. For each prompt entry, each combination of its template variables, each
//! matrix combination and each sample: merge the request fields (matrix > prompt entry >
//! defaults), check the request against the Kling contract, and name the job.

use super::job::{JobId, JobSpec, Params, RequestBody, request_digest, slug};
use super::matrix::{Combination, combinations};
use super::problems::{describe, duplicate, to_problem};
use super::template::{Template, TemplateError};
use crate::inputs::Inputs;
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

use super::field::{Field, Fields, Layer};

mod adapt;
mod needs;
mod prompt;
mod slices;
mod variables;

use adapt::*;
pub use needs::{PARENT_SCHEME, fill_parent, parent_of_request};
use needs::{Step, graph, step_combos, step_problems};
use prompt::*;
use slices::*;
use variables::*;

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
    /// The local files the jobs name (uploaded when a job is submitted).
    pub inputs: Arc<Inputs>,
    /// Steps with `only:`: which parents they run for is chosen from the run's reviews
    /// (`Plan::choose`).
    pub choices: Vec<super::only::Choice>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    pub prompt: String,
    pub combination: String,
    pub reason: String,
}

/// Expands and checks every job of `manifest`, or reports every problem found. A manifest that
/// names local files needs them gathered first: see `expand_with_inputs`.
pub fn expand(manifest: &Manifest) -> Result<Plan, Vec<Diagnostic>> {
    expand_with_inputs(manifest, Arc::new(Inputs::default()))
}

/// `expand`, with the local files `crate::inputs::gather` found for this manifest.
pub fn expand_with_inputs(manifest: &Manifest, inputs: Arc<Inputs>) -> Result<Plan, Vec<Diagnostic>> {
    expand_full(manifest, inputs, None, CHUNK_JOBS)
}

/// `expand` on `threads` threads (by default: every core, for plans above `PARALLEL_ABOVE` jobs),
/// merging every `chunk_jobs` jobs. The result never depends on either; tests check that.
#[doc(hidden)]
pub fn expand_with(manifest: &Manifest, threads: Option<usize>, chunk_jobs: usize) -> Result<Plan, Vec<Diagnostic>> {
    expand_full(manifest, Arc::new(Inputs::default()), threads, chunk_jobs)
}

fn expand_full(
    manifest: &Manifest,
    inputs: Arc<Inputs>,
    threads: Option<usize>,
    chunk_jobs: usize,
) -> Result<Plan, Vec<Diagnostic>> {
    let fail = |problems: Vec<Problem>| Err(manifest.sources.resolve(problems));
    let table = PriceTable::with_overrides(manifest.pricing.clone());
    let combos = match combinations(&manifest.matrix, MAX_JOBS) {
        Ok(c) => c,
        Err(p) => return fail(vec![p]),
    };
    let graph = match graph(manifest) {
        Ok(g) => g,
        Err(p) => return fail(p),
    };
    let choices = match choices(manifest) {
        Ok(c) => c,
        Err(p) => return fail(p),
    };
    let repeat = u64::from(manifest.repeat.get());
    // Steps take one sample per parent job; how many parents they have is counted once built.
    let repeat_of = |index: usize| {
        if manifest.prompts[index].needs.is_some() {
            1
        } else {
            repeat
        }
    };
    let files_of = |index: usize| {
        inputs
            .patterns(index)
            .iter()
            .try_fold(1u64, |n, (_, matches)| n.checked_mul(matches.len() as u64))
    };
    let total = manifest.prompts.iter().enumerate().try_fold(0u64, |acc, (index, p)| {
        let vars = p
            .vars
            .iter()
            .try_fold(1u64, |n, (_, values)| n.checked_mul(values.len() as u64))?
            .checked_mul(files_of(index)?)?;
        acc.checked_add(vars.checked_mul(combos.len() as u64)?.checked_mul(repeat_of(index))?)
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

    let mut swept = swept_names(manifest);
    let names: HashMap<&str, Arc<str>> = swept.iter().map(|n| (n.as_str(), Arc::from(n.as_str()))).collect();
    let context = Context {
        manifest,
        combos: &combos,
        table: &table,
        names: &names,
        inputs: &inputs,
    };
    // Each prompt entry expands on its own, so large manifests use every core: the prompts are
    // cut into contiguous runs of about equal job counts. The order of everything that follows
    // (jobs, problems, skipped combinations) is the manifest's, whatever the split.
    let per_prompt: Vec<u64> = manifest
        .prompts
        .iter()
        .enumerate()
        .map(|(index, p)| {
            p.vars
                .iter()
                .try_fold(1u64, |n, (_, v)| n.checked_mul(v.len() as u64))
                .and_then(|n| n.checked_mul(files_of(index)?))
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
        steps: HashMap::new(),
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
    let steps = std::mem::take(&mut merged.steps);
    if merged.problems.is_empty() {
        merged.build_steps(manifest, &graph, steps);
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
    // Fields that named local files are shown like swept parameters: the path as written.
    let with_files = if inputs.files.is_empty() { &jobs[..0] } else { &jobs[..] };
    for job in with_files {
        for (name, _) in job.params.iter() {
            if crate::inputs::media_kind(name).is_some() && !swept.iter().any(|s| s == name) {
                swept.push(name.to_string());
            }
        }
    }
    Ok(Plan {
        name: manifest.name.clone(),
        manifest: manifest.path.clone(),
        jobs,
        swept,
        notes: notes.render(),
        skipped,
        limits: manifest.limits.clone(),
        inputs,
        choices,
    })
}

/// Every step's `only:` read; one on an entry that is not a step, or one that cannot be read, is
/// a problem at its place.
fn choices(manifest: &Manifest) -> Result<Vec<super::only::Choice>, Vec<Problem>> {
    let mut choices = Vec::new();
    let mut problems = Vec::new();
    for (entry, prompt) in manifest.prompts.iter().enumerate() {
        let Some(only) = &prompt.only else { continue };
        if prompt.needs.is_none() {
            problems.push(
                Problem::new(
                    only.origin.clone(),
                    "only: chooses among a step's parents, and this entry is not a step",
                )
                .hint("add `needs: <id>` naming the entry whose clips it continues, or remove `only:`"),
            );
            continue;
        }
        match super::only::parse(&only.value) {
            Ok(rule) => choices.push(super::only::Choice {
                entry,
                rule,
                text: only.value.clone(),
            }),
            Err(message) => problems.push(
                Problem::new(only.origin.clone(), format!("only: {message}"))
                    .hint("write `only: picked`, `only: \"rating >= 4\"` or `only: \"top 2 per prompt\"`"),
            ),
        }
    }
    if problems.is_empty() {
        Ok(choices)
    } else {
        Err(problems)
    }
}

/// The plan as prompts' expansions are folded in, in manifest order.
struct Merged {
    problems: Vec<Problem>,
    jobs: Vec<JobSpec>,
    skipped: Vec<Skipped>,
    notes: Notes,
    /// (request digest, sample) → (index in jobs, whether adaptation produced it)
    seen: HashMap<([u8; 8], u32), (usize, bool)>,
    /// Steps' requests, by prompt entry, made into jobs once every entry is expanded.
    steps: HashMap<usize, Step>,
}

impl Merged {
    /// Jobs are compared across prompts in manifest order: the first of two identical requests
    /// stays, a later one is a problem (or merged, when adaptation made them identical).
    fn take(&mut self, manifest: &Manifest, part: Vec<Expanded>, notes: Notes) {
        self.notes.absorb(notes);
        for entry in part {
            let prompt = &manifest.prompts[entry.index];
            let mut produced = 0usize;
            let mut step = prompt.needs.is_some().then(|| Step {
                index: entry.index,
                label: entry.label.clone(),
                meta: entry.meta.clone(),
                candidates: Vec::new(),
            });
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
                if let Some(step) = step.as_mut() {
                    step.candidates.push(candidate);
                    produced += 1;
                    continue;
                }
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
                        parent: None,
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
            if let Some(step) = step {
                self.steps.insert(step.index, step);
            }
        }
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
