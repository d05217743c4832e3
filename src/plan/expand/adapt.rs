//! One request from its layers (matrix > prompt entry > defaults), checked against the contract
//! under the manifest's `on_unsupported` policy: a job, a skipped combination, or problems.

use super::*;

pub(super) enum Outcome {
    Job {
        endpoint: Endpoint,
        request: Map<String, Value>,
        adapted: bool,
    },
    Skipped(String),
    Invalid(Vec<Problem>),
}

#[derive(Default)]
pub(super) struct Notes {
    /// (field, model or endpoint) → jobs that did not get a default because their model lacks it.
    pub(super) dropped_defaults: BTreeMap<(String, String), usize>,
    pub(super) merged: usize,
}

impl Notes {
    pub(super) fn absorb(&mut self, other: Notes) {
        for (key, n) in other.dropped_defaults {
            *self.dropped_defaults.entry(key).or_default() += n;
        }
        self.merged += other.merged;
    }

    pub(super) fn render(&self) -> Vec<String> {
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

pub(super) fn merge<'a>(
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

pub(super) fn check(mut fields: Fields<'_>, policy: OnUnsupported, subject: &str, notes: &mut Notes) -> Outcome {
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
