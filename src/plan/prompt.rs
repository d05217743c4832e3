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
