//! One prompt entry's jobs: its variables × the matrix × samples, each request merged, checked,
//! priced and named, with the notes and problems met on the way.

use super::*;

/// What every prompt's expansion reads.
#[derive(Clone, Copy)]
pub(super) struct Context<'a> {
    pub(super) manifest: &'a Manifest,
    pub(super) combos: &'a [Combination],
    pub(super) table: &'a PriceTable,
    pub(super) names: &'a HashMap<&'a str, Arc<str>>,
    pub(super) inputs: &'a Inputs,
}

/// One prompt entry's jobs before they are compared with other prompts', with what went wrong.
pub(super) struct Expanded {
    pub(super) index: usize,
    pub(super) label: Arc<str>,
    pub(super) meta: Arc<BTreeMap<String, String>>,
    pub(super) subject: String,
    pub(super) items: Vec<Item>,
    pub(super) first_skip: Option<String>,
}

pub(super) enum Item {
    Job(Candidate),
    Skipped(Skipped),
    Problems(Vec<Problem>),
}

/// A checked request: one job per sample once it is known to be new.
pub(super) struct Candidate {
    pub(super) endpoint: Endpoint,
    pub(super) body: RequestBody,
    pub(super) digest: [u8; 8],
    pub(super) prefix: String,
    pub(super) priced: Arc<PricedShape>,
    pub(super) params: Params,
    pub(super) estimate: Estimate,
    pub(super) adapted: bool,
}

/// What the jobs of one thread share, kept once.
#[derive(Default)]
pub(super) struct Interned {
    pub(super) shapes: HashMap<PricedShape, (Arc<PricedShape>, (Money, PriceSource))>,
    pub(super) params: HashMap<String, Params>,
}

impl Context<'_> {
    /// Expands prompts `from..to`.
    pub(super) fn prompts(self, from: usize, to: usize) -> (Vec<Expanded>, Notes) {
        let mut notes = Notes::default();
        let mut interned = Interned::default();
        let out = (from..to)
            .map(|index| self.prompt(index, &mut interned, &mut notes))
            .collect();
        (out, notes)
    }

    pub(super) fn prompt(self, index: usize, interned: &mut Interned, notes: &mut Notes) -> Expanded {
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
        let step_checks = step_problems(manifest, prompt, &entry.subject);
        if !step_checks.is_empty() {
            entry.items.push(Item::Problems(step_checks));
            return entry;
        }
        let own_combos;
        let combos: &[Combination] = match &prompt.needs {
            Some(_) => {
                own_combos = step_combos(manifest, prompt, self.combos);
                &own_combos
            }
            None => self.combos,
        };
        let name_of = |n: &str| self.names.get(n).cloned().unwrap_or_else(|| Arc::from(n));
        let choices = file_choices(self.inputs.patterns(index));
        for assignment in assignments(&prompt.vars) {
            let values: BTreeMap<&str, &str> = assignment.iter().map(|(n, v)| (n.as_str(), v.value.as_str())).collect();
            for (choice, combo) in choices.iter().flat_map(|c| combos.iter().map(move |combo| (c, combo))) {
                let mut fields = merge(manifest, prompt, &templates, &values, combo);
                if let Some(needs) = &prompt.needs {
                    // Checked with a stand-in; made once per parent job with its id.
                    fields.insert(
                        "source_task_id",
                        Field {
                            value: Cow::Owned(Value::String(needs::SLOT.into())),
                            origin: &needs.origin,
                            layer: Layer::Prompt,
                        },
                    );
                }
                // A pattern's match stands in for the pattern; then every local file for its
                // content.
                for (field, written) in choice {
                    if let Some(f) = fields.get_mut(field.as_str()) {
                        f.value = Cow::Owned(Value::String(written.clone()));
                    }
                }
                let local = localize(&mut fields, self.inputs);
                // A step's endpoint never takes the sweep's model or length: not worth a note.
                let mut quiet = Notes::default();
                let notes_here = if prompt.needs.is_some() {
                    &mut quiet
                } else {
                    &mut *notes
                };
                match check(fields, manifest.on_unsupported, &entry.subject, notes_here) {
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
                        let mut prefix = prompt.id.clone().unwrap_or_else(|| prefix_of(&request));
                        // A job on local files carries the (first) file's name in its id.
                        if let Some((_, file)) = local.first() {
                            let stem = slug(&file.stem(), STEM_LEN);
                            if !stem.is_empty() {
                                prefix = format!("{prefix}-{stem}");
                            }
                        }
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
                        for (field, file) in &local {
                            params.push((name_of(field), Value::String(file.written.clone())));
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

pub(super) fn label_of(prompt: &PromptEntry) -> String {
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

pub(super) fn prefix_of(request: &Map<String, Value>) -> String {
    let text = request
        .get("prompt")
        .and_then(Value::as_str)
        .or_else(|| request.get("multi_prompt")?.get(0)?.get("prompt")?.as_str())
        .unwrap_or("");
    slug(text, SLUG_LEN)
}

/// Longest part of a job id taken from a local file's name.
const STEM_LEN: usize = 10;

/// Every combination of a prompt entry's pattern matches: (field, written path) per pattern.
fn file_choices(patterns: &[(String, Vec<String>)]) -> Vec<Vec<(String, String)>> {
    let mut out: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (field, matches) in patterns {
        out = out
            .iter()
            .flat_map(|prefix| {
                matches.iter().map(move |m| {
                    let mut next = prefix.clone();
                    next.push((field.clone(), m.clone()));
                    next
                })
            })
            .collect();
    }
    out
}

/// Puts each local file's placeholder (its content) where the request names it; returns the
/// fields and files, patterns' first. A path no file was gathered for stays (and fails the URL
/// check with its place).
fn localize<'a>(fields: &mut Fields<'_>, inputs: &'a Inputs) -> Vec<(String, &'a crate::inputs::LocalFile)> {
    let mut found = Vec::new();
    for (name, field) in fields.iter_mut() {
        if crate::inputs::media_kind(name).is_none() {
            continue;
        }
        let swap = |text: &str| inputs.file(text).filter(|_| crate::inputs::is_local(text));
        match field.value.as_ref() {
            Value::String(text) => {
                if let Some(file) = swap(text) {
                    found.push((name.to_string(), file));
                    field.value = Cow::Owned(Value::String(file.placeholder()));
                }
            }
            Value::Array(items) => {
                let mut changed = false;
                let replaced: Vec<Value> = items
                    .iter()
                    .map(|item| match item.as_str().and_then(swap) {
                        Some(file) => {
                            changed = true;
                            found.push((name.to_string(), file));
                            Value::String(file.placeholder())
                        }
                        None => item.clone(),
                    })
                    .collect();
                if changed {
                    field.value = Cow::Owned(Value::Array(replaced));
                }
            }
            _ => {}
        }
    }
    found
}
