//! Steps: a prompt entry with `needs: <id>` runs once for every job of the entry it names, each
//! of its jobs continuing that job's task (`source_task_id`). A step's matrix is what its own
//! endpoint takes (axes it does not take, and fields it sets itself, do not multiply it), and
//! `repeat` does not apply to it: every parent job, each sample included, gets one of each of the
//! step's requests.
//!
//! A planned step names its parent in `source_task_id` as `kb-parent://<parent job id>`, so its
//! id follows its entry and its parent; the runner puts the parent's task id there when it
//! admits the job, after the parent completed.

use super::*;
use crate::kling::continuation::{can_continue, is_continuation};

/// The scheme of a planned step's `source_task_id`: `kb-parent://<parent job id>`.
pub const PARENT_SCHEME: &str = "kb-parent://";
/// What a step's request holds in `source_task_id` while it is merged and checked, before it is
/// made once per parent job.
pub(super) const SLOT: &str = "kb-parent-slot";

/// Which entry each step needs, and an order in which every step comes after the entry it needs.
pub(super) struct Graph {
    pub(super) parent: Vec<Option<usize>>,
    pub(super) order: Vec<usize>,
}

/// The `needs:` of every entry resolved: each names exactly one entry, and no chain comes back
/// on itself.
pub(super) fn graph(manifest: &Manifest) -> Result<Graph, Vec<Problem>> {
    let prompts = &manifest.prompts;
    let mut by_id: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, p) in prompts.iter().enumerate() {
        if let Some(id) = &p.id {
            by_id.entry(id.as_str()).or_default().push(i);
        }
    }
    let mut problems = Vec::new();
    let mut parent = vec![None; prompts.len()];
    for (i, p) in prompts.iter().enumerate() {
        let Some(needs) = &p.needs else { continue };
        let name = needs.value.as_str();
        match by_id.get(name).map(Vec::as_slice) {
            Some([j]) => parent[i] = Some(*j),
            Some(many) => problems.push(
                Problem::new(
                    needs.origin.clone(),
                    format!("needs `{name}`, but {} prompt entries have that id", many.len()),
                )
                .hint("give each entry its own id"),
            ),
            None => problems.push(
                Problem::new(
                    needs.origin.clone(),
                    format!("needs `{name}`, but no prompt entry has that id"),
                )
                .maybe_hint(did_you_mean(name, by_id.keys().copied()).map(|s| format!("did you mean `{s}`?")))
                .hint("needs names the `id:` of the entry whose jobs this one continues"),
            ),
        }
    }
    // Depth of each entry in its chain; an entry on a cycle (or leading into one) has none. Each
    // entry has at most one parent, so one walk per entry that stops at the first entry already
    // settled finds every depth and every cycle in time linear in the entries.
    let n = prompts.len();
    let mut depth: Vec<Option<usize>> = vec![None; n];
    let mut settled = vec![false; n];
    // Where an entry sits in the walk under way (`usize::MAX`: not in it).
    let mut on_walk = vec![usize::MAX; n];
    let mut cycles: Vec<Vec<usize>> = Vec::new();
    let mut chain: Vec<usize> = Vec::new();
    for start in 0..n {
        if settled[start] {
            continue;
        }
        chain.clear();
        let mut at = start;
        let base = loop {
            on_walk[at] = chain.len();
            chain.push(at);
            match parent[at] {
                None => break Some(0),
                Some(p) if settled[p] => break depth[p].map(|d| d + 1),
                Some(p) if on_walk[p] != usize::MAX => {
                    // Back to an entry of this walk: the entries from it on make a cycle.
                    cycles.push(chain[on_walk[p]..].to_vec());
                    break None;
                }
                Some(p) => at = p,
            }
        };
        // Walking back down the chain fills in every entry met on the way.
        for (k, &e) in chain.iter().rev().enumerate() {
            depth[e] = base.map(|b| b + k);
            settled[e] = true;
            on_walk[e] = usize::MAX;
        }
    }
    // Each cycle reported once, at its first entry in manifest order, in that order.
    for cycle in &mut cycles {
        let first = cycle.iter().enumerate().min_by_key(|(_, e)| **e).map_or(0, |(k, _)| k);
        cycle.rotate_left(first);
    }
    cycles.sort_by_key(|c| c[0]);
    for cycle in &cycles {
        let start = cycle[0];
        let names: Vec<&str> = cycle.iter().map(|&e| prompts[e].id.as_deref().unwrap_or("?")).collect();
        let origin = prompts[start]
            .needs
            .as_ref()
            .map_or(prompts[start].origin.clone(), |n| n.origin.clone());
        problems.push(
            Problem::new(
                origin,
                format!("needs make a cycle: {} → {}", names.join(" → "), names[0]),
            )
            .hint("the first entry of a chain has no needs; each later one needs the one before"),
        );
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut order: Vec<usize> = (0..prompts.len()).filter(|&i| parent[i].is_some()).collect();
    order.sort_by_key(|&i| depth[i]);
    Ok(Graph { parent, order })
}

/// Checks that only steps can make: the endpoint continues tasks, and `source_task_id` is left
/// to the parent.
pub(super) fn step_problems(manifest: &Manifest, prompt: &PromptEntry, subject: &str) -> Vec<Problem> {
    let Some(needs) = &prompt.needs else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    let endpoint = step_endpoint(manifest, prompt);
    if !is_continuation(endpoint) {
        problems.push(
            Problem::new(
                needs.origin.clone(),
                format!(
                    "needs `{}` makes this entry continue that entry's videos, but {endpoint} does not continue a task",
                    needs.value
                ),
            )
            .subject(subject)
            .hint("set `endpoint: extend_video` (longer clips) or `endpoint: edit_video` on this entry"),
        );
    }
    if let Some(source) = prompt.fields.get("source_task_id") {
        problems.push(
            Problem::new(
                source.origin.clone(),
                format!(
                    "this entry needs `{}`, so its source_task_id is each parent job's task",
                    needs.value
                ),
            )
            .subject(subject)
            .hint("remove source_task_id from the entry"),
        );
    }
    problems
}

/// A step's endpoint: its own, else the defaults' (a matrix `endpoint` axis does not apply to it).
pub(super) fn step_endpoint(manifest: &Manifest, prompt: &PromptEntry) -> Endpoint {
    prompt
        .fields
        .get("endpoint")
        .or_else(|| manifest.defaults.get("endpoint"))
        .and_then(|f| f.value.as_str())
        .and_then(|s| s.parse().ok())
        .unwrap_or(Endpoint::TextToVideo)
}

/// The matrix as a step sees it: only axes its endpoint takes and it does not set itself, each
/// distinct combination once.
pub(super) fn step_combos(manifest: &Manifest, prompt: &PromptEntry, combos: &[Combination]) -> Vec<Combination> {
    let endpoint = step_endpoint(manifest, prompt);
    let model = prompt
        .fields
        .get("model")
        .or_else(|| manifest.defaults.get("model"))
        .and_then(|f| f.value.as_str());
    let keep = |name: &str| {
        name != "endpoint"
            && name != "source_task_id"
            && !prompt.fields.contains_key(name)
            && kling::accepts(endpoint, model, name)
    };
    let mut out: Vec<Combination> = Vec::new();
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    for combo in combos {
        let values: Vec<(String, Sourced<Value>)> = combo.values.iter().filter(|(n, _)| keep(n)).cloned().collect();
        let key: String = values.iter().map(|(n, v)| format!("{n}\0{}\0", v.value)).collect();
        if seen.insert(key) {
            out.push(Combination { values });
        }
    }
    out
}

/// A step's requests before they are made once per parent job.
pub(super) struct Step {
    pub(super) index: usize,
    pub(super) label: Arc<str>,
    pub(super) meta: Arc<BTreeMap<String, String>>,
    pub(super) candidates: Vec<Candidate>,
}

impl Merged {
    /// Makes every step's jobs, parents' steps first: one per parent job and request. A parent
    /// whose jobs the step cannot continue is a problem at the step's `needs`.
    pub(super) fn build_steps(&mut self, manifest: &Manifest, graph: &Graph, mut steps: HashMap<usize, Step>) {
        let mut by_entry: Vec<Vec<usize>> = vec![Vec::new(); manifest.prompts.len()];
        for (i, job) in self.jobs.iter().enumerate() {
            by_entry[job.prompt_index].push(i);
        }
        for &entry in &graph.order {
            let (Some(step), Some(parent_entry), Some(needs)) = (
                steps.remove(&entry),
                graph.parent[entry],
                manifest.prompts[entry].needs.as_ref(),
            ) else {
                continue;
            };
            let parents = by_entry[parent_entry].clone();
            let count = parents.len().saturating_mul(step.candidates.len());
            if self.jobs.len().saturating_add(count) as u64 > MAX_JOBS {
                self.problems.push(
                    Problem::new(
                        needs.origin.clone(),
                        format!(
                            "this step makes {count} jobs ({} parent jobs × {} requests), which takes the plan past {MAX_JOBS} jobs",
                            parents.len(),
                            step.candidates.len()
                        ),
                    )
                    .hint("narrow the parent's sweep or this step's variables, or split the sweep"),
                );
                return;
            }
            let mut refused: std::collections::HashSet<String> = std::collections::HashSet::new();
            for &p in &parents {
                let parent_id = self.jobs[p].id.clone();
                let (parent_endpoint, parent_model) = (self.jobs[p].endpoint, self.jobs[p].model().map(str::to_string));
                for candidate in &step.candidates {
                    if let Err(why) = can_continue(candidate.endpoint, parent_endpoint, parent_model.as_deref()) {
                        if refused.insert(why.clone()) {
                            self.problems.push(
                                Problem::new(
                                    needs.origin.clone(),
                                    format!("`{}` cannot continue the jobs of `{}`: {why}", step.label, needs.value),
                                )
                                .hint(format!(
                                    "put `{}` on {}, or continue its videos with edit_video",
                                    needs.value,
                                    crate::kling::continuation::EXTENDABLE_MODELS.join(" or ")
                                )),
                            );
                        }
                        continue;
                    }
                    let mut fields = candidate.body.fields();
                    fields.insert(
                        "source_task_id".into(),
                        Value::String(format!("{PARENT_SCHEME}{parent_id}")),
                    );
                    let body = RequestBody::new(&fields);
                    let digest = request_digest(candidate.endpoint, &body);
                    if let Some(&(other, _)) = self.seen.get(&(digest, 1)) {
                        let prompt = &manifest.prompts[entry];
                        self.problems.push(duplicate(
                            prompt,
                            &format!("prompt `{}`", step.label),
                            &manifest.prompts[self.jobs[other].prompt_index],
                            &self.jobs[other],
                        ));
                        continue;
                    }
                    self.seen.insert((digest, 1), (self.jobs.len(), false));
                    by_entry[entry].push(self.jobs.len());
                    self.jobs.push(JobSpec {
                        id: JobId::new(&candidate.prefix, &crate::util::hex::hex(&digest), 1),
                        endpoint: candidate.endpoint,
                        request: body,
                        priced: candidate.priced.clone(),
                        prompt_index: step.index,
                        label: step.label.clone(),
                        params: candidate.params.clone(),
                        meta: step.meta.clone(),
                        sample: 1,
                        estimate: candidate.estimate.clone(),
                        parent: Some(p),
                    });
                }
            }
        }
    }
}

/// The parent job id a planned step's request names, if it is one.
pub fn parent_of_request(source_task_id: &str) -> Option<&str> {
    source_task_id.strip_prefix(PARENT_SCHEME)
}

/// A step's request with its parent's task id in `source_task_id`, as it is sent.
pub fn fill_parent(request: &str, task_id: &str) -> Option<String> {
    let mut fields: Map<String, Value> = serde_json::from_str(request).ok()?;
    let slot = fields.get_mut("source_task_id")?;
    if !slot.as_str().is_some_and(|s| s.starts_with(PARENT_SCHEME)) {
        return None;
    }
    *slot = Value::String(task_id.to_string());
    Some(RequestBody::new(&fields).as_str().to_string())
}
