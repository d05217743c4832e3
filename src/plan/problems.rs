//! Turning contract violations and duplicates into problems a person can act on: the place to
//! point at, who it concerns, and a hint.

use super::field::{Fields, Layer};
use super::job::JobSpec;
use super::matrix::Combination;
use crate::kling::{Endpoint, Violation, ViolationKind};
use crate::manifest::{Origin, Problem, PromptEntry, did_you_mean, endpoints_of};
use serde_json::Value;

pub(super) fn to_problem(v: &Violation, endpoint: Endpoint, fields: &Fields<'_>, subject: &str) -> Problem {
    let field = v.field.as_deref().and_then(|name| fields.get(name));
    // At the value at fault; for a missing field, at the value that made a rule require it, else
    // at the prompt entry.
    let trigger = v.related.iter().find_map(|name| fields.get(name.as_str()));
    let at = field.or(trigger);
    let origin = match at {
        Some(f) => f.origin.clone(),
        None => fields
            .get("prompt")
            .or_else(|| fields.values().find(|f| f.layer == Layer::Prompt))
            .map_or_else(
                || fields.values().next().map_or(Origin::yaml(""), |f| f.origin.clone()),
                |f| f.origin.clone(),
            ),
    };
    // A value from `defaults:` or the matrix is shared by many prompts: name the model instead.
    let subject = match at.map(|f| f.layer) {
        Some(Layer::Defaults | Layer::Matrix) if v.kind == ViolationKind::Model => None,
        Some(Layer::Defaults | Layer::Matrix) => Some(match fields.get("model").and_then(|f| f.value.as_str()) {
            Some(model) if endpoint.takes_model() => format!("jobs on {model}"),
            _ => format!("jobs on {endpoint}"),
        }),
        _ => Some(subject.to_string()),
    };
    let mut problem = Problem::new(origin, v.message.clone());
    problem.subject = subject;
    let value_text = field.and_then(|f| {
        f.value
            .as_str()
            .map(str::to_string)
            .or_else(|| Some(f.value.to_string()))
    });
    match v.kind {
        ViolationKind::Model => {
            if let Some(model) = field.and_then(|f| f.value.as_str()) {
                problem.message = format!("`{model}` is not a {endpoint} model");
                let elsewhere = endpoints_of(model);
                if let Some(e) = elsewhere.first() {
                    let article = if e.as_str().starts_with(['a', 'e', 'i', 'o', 'u']) {
                        "an"
                    } else {
                        "a"
                    };
                    problem = problem.hint(format!("{model} is {article} {e} model: set `endpoint: {e}`"));
                } else if let Some(s) = did_you_mean(model, v.allowed.iter().map(String::as_str)) {
                    problem = problem.hint(format!("did you mean `{s}`?"));
                }
                problem = problem.hint(format!("{endpoint} models: {}", v.allowed.join(", ")));
            } else if field.is_none() {
                let hint = match problem.origin {
                    Origin::Csv { .. } => "add a `model` column",
                    _ => "set `model:` under `defaults:` or in the prompt entry",
                };
                problem = problem.hint(hint);
            }
        }
        ViolationKind::NotAllowed | ViolationKind::Conditional if !v.allowed.is_empty() => {
            if let Some(s) = value_text
                .as_deref()
                .and_then(|t| did_you_mean(t, v.allowed.iter().map(String::as_str)))
            {
                problem = problem.hint(format!("did you mean `{s}`?"));
            }
        }
        ViolationKind::NotAccepted | ViolationKind::Forbidden => {
            let name = v.field.as_deref().unwrap_or("");
            problem = match field.map(|f| f.layer) {
                Some(Layer::Matrix) => problem.hint(format!(
                    "remove `{name}` from the matrix, or set `on_unsupported: adapt` to leave it out for models that do not take it"
                )),
                _ => problem.hint(format!("remove `{name}`, or choose a model that takes it")),
            };
        }
        ViolationKind::WrongType => {
            if let Some(Value::String(s)) = field.map(|f| f.value.as_ref())
                && s.parse::<f64>().is_ok()
            {
                problem = problem.hint(format!("write {s} without quotes"));
            }
        }
        _ => {}
    }
    problem
}

pub(super) fn duplicate(prompt: &PromptEntry, subject: &str, other_prompt: &PromptEntry, other: &JobSpec) -> Problem {
    let same_entry = std::ptr::eq(prompt, other_prompt);
    let problem = Problem::new(
        prompt.origin.clone(),
        format!("makes the same request as job {}", other.id),
    )
    .subject(subject);
    if same_entry {
        problem.hint("two combinations of this entry send identical requests; check its vars and the matrix")
    } else {
        problem.hint(format!(
            "it repeats prompt `{}`; to sample one request more than once, use `repeat:`",
            other.label
        ))
    }
}

pub(super) fn describe(combo: &Combination) -> String {
    combo
        .values
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.value.as_str().map_or_else(|| v.value.to_string(), str::to_string)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
