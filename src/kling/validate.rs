//! Applies the model tables to one request body and reports every violation, in the wording the
//! SDKs use (contract §2.2), so manifest errors and simulator 422s read the same.

use super::checks::{check_constraint, check_type};
use super::fields::{FieldType, field};
use super::models::{Bespoke, Cond, Constraint, Lit, ModelSpec, Then, model_spec, models_for};
use super::violation::{Violation, ViolationKind, is_present};
use super::{Endpoint, o1};
use serde_json::{Map, Value};

/// How to treat fields the contract does not document for a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strictness {
    /// The batch runner: an undocumented field is an error, so nothing is paid for a field the
    /// service may silently ignore.
    Client,
    /// The simulator: like the real service as far as it is known, undocumented fields are
    /// ignored and only explicit contract rules reject.
    Server,
}

/// Whether `model` on `endpoint` takes `field` at all.
pub(crate) fn accepts(endpoint: Endpoint, model: Option<&str>, name: &str) -> bool {
    if name == "model" {
        return endpoint.takes_model();
    }
    model_spec(endpoint, model).is_some_and(|spec| spec.constraint(name).is_some())
}

/// Every violation of the contract in `body`, a request to `endpoint`.
pub(crate) fn validate(endpoint: Endpoint, body: &Map<String, Value>, strictness: Strictness) -> Vec<Violation> {
    let mut out = Vec::new();
    let model = if endpoint.takes_model() {
        match body.get("model") {
            Some(Value::String(m)) if !m.trim().is_empty() => Some(m.as_str()),
            Some(v) if is_present(Some(v)) => {
                out.push(Violation::new(
                    "model",
                    ViolationKind::Model,
                    "model must be a string".into(),
                ));
                return out;
            }
            _ => {
                out.push(Violation::new(
                    "model",
                    ViolationKind::Model,
                    "model is required".into(),
                ));
                return out;
            }
        }
    } else {
        None
    };
    let Some(spec) = model_spec(endpoint, model) else {
        let allowed: Vec<String> = models_for(endpoint).into_iter().map(String::from).collect();
        out.push(
            Violation::new(
                "model",
                ViolationKind::Model,
                format!("model must be one of: {}", allowed.join(", ")),
            )
            .with_allowed(allowed),
        );
        return out;
    };
    let model_name = model.unwrap_or("extend_video");

    for (name, value) in body {
        if name == "model" && endpoint.takes_model() {
            continue;
        }
        check_field(spec, model_name, name, value, strictness, &mut out);
    }
    for name in spec.required {
        if !is_present(body.get(*name)) && !already_reported(&out, name) {
            out.push(Violation::new(
                name,
                ViolationKind::Required,
                format!("{name} is required"),
            ));
        }
    }
    for rule in spec.rules {
        if !rule.when.iter().all(|c| holds(c, body)) {
            continue;
        }
        let before = out.len();
        apply_then(&rule.then, rule.message, &describe_when(rule.when), body, &mut out);
        let related: Vec<String> = rule
            .when
            .iter()
            .map(|c| match c {
                Cond::Eq(f, _) | Cond::Present(f, _) => f.to_string(),
            })
            .collect();
        for v in &mut out[before..] {
            v.related.clone_from(&related);
        }
    }
    if spec.bespoke == Bespoke::O1References {
        o1::check(endpoint, body, &mut out);
    }
    out
}

fn already_reported(out: &[Violation], name: &str) -> bool {
    out.iter().any(|v| v.field.as_deref() == Some(name))
}

fn check_field(
    spec: &ModelSpec,
    model: &str,
    name: &str,
    value: &Value,
    strictness: Strictness,
    out: &mut Vec<Violation>,
) {
    if !is_present(Some(value)) {
        return; // compacted away, as the SDKs do before sending
    }
    if spec.forbidden.contains(&name) {
        let message = if spec.endpoint.takes_model() {
            format!("{name} is not allowed when model is {model}")
        } else {
            format!("{name} is not allowed for {}", spec.endpoint)
        };
        out.push(Violation::new(name, ViolationKind::Forbidden, message));
        return;
    }
    let Some(constraint) = spec.constraint(name) else {
        if strictness == Strictness::Client {
            let message = match field(name) {
                Some(_) if spec.endpoint.takes_model() => {
                    format!("{name} is not accepted by {model} on {}", spec.endpoint)
                }
                Some(_) => format!("{name} is not accepted by {}", spec.endpoint),
                None => format!("{name} is not a Kling request field"),
            };
            out.push(Violation::new(name, ViolationKind::NotAccepted, message));
        }
        return;
    };
    let ty = field(name).map_or(FieldType::String, |f| f.ty);
    // For a fixed set of values, "must be one of" says more than "must be a string".
    let is_enum = matches!(constraint, Constraint::Enum(_));
    if let Some(v) = check_type(name, ty, value).filter(|_| !is_enum) {
        out.push(v);
        return;
    }
    if name == "source_task_id"
        && let Some(id) = value.as_str()
        && (id.trim().is_empty()
            || id.contains(['{', '}'])
            || id.contains("://")
            || id.chars().any(char::is_whitespace))
    {
        // `{from:step1}`, `kb-parent://…` and the like are not filled in by anyone: the service
        // would be asked to continue a task that does not exist (`needs:` is how a step names
        // its parent).
        out.push(Violation::new(
            name,
            ViolationKind::WrongType,
            format!("source_task_id must be the id of a completed task, not `{id}`"),
        ));
        return;
    }
    if let Some(v) = check_constraint(name, constraint, value) {
        out.push(v);
    }
}

fn lit_matches(lit: &Lit, value: Option<&Value>) -> bool {
    match (lit, value) {
        (Lit::Str(s), Some(Value::String(v))) => v == s,
        (Lit::Int(n), Some(v)) => v.as_i64() == Some(*n),
        (Lit::Bool(b), Some(Value::Bool(v))) => v == b,
        _ => false,
    }
}

fn lit_text(lit: &Lit) -> String {
    match lit {
        Lit::Str(s) => s.to_string(),
        Lit::Int(n) => n.to_string(),
        Lit::Bool(b) => b.to_string(),
    }
}

fn holds(cond: &Cond, body: &Map<String, Value>) -> bool {
    match cond {
        Cond::Eq(f, lit) => lit_matches(lit, body.get(*f)),
        Cond::Present(f, want) => is_present(body.get(*f)) == *want,
    }
}

fn describe_when(when: &[Cond]) -> String {
    when.iter()
        .map(|c| match c {
            Cond::Eq(f, lit) => format!("{f} is {}", lit_text(lit)),
            Cond::Present(f, true) => format!("{f} is present"),
            Cond::Present(f, false) => format!("{f} is absent"),
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

fn apply_then(then: &Then, message: Option<&str>, context: &str, body: &Map<String, Value>, out: &mut Vec<Violation>) {
    let when = if context.is_empty() {
        String::new()
    } else {
        format!(" when {context}")
    };
    let say = |generic: String| message.map_or(generic, str::to_string);
    match then {
        Then::Required(fields) => {
            for f in *fields {
                if !is_present(body.get(*f)) && !already_reported(out, f) {
                    out.push(Violation::new(
                        f,
                        ViolationKind::Conditional,
                        say(format!("{f} is required{when}")),
                    ));
                }
            }
        }
        Then::Forbidden(fields) => {
            for f in *fields {
                if is_present(body.get(*f)) && !already_reported(out, f) {
                    out.push(Violation::new(
                        f,
                        ViolationKind::Conditional,
                        say(format!("{f} is not allowed{when}")),
                    ));
                }
            }
        }
        Then::RequiredAny(fields) => {
            if !fields.iter().any(|f| is_present(body.get(*f))) {
                out.push(Violation {
                    field: None,
                    kind: ViolationKind::Conditional,
                    message: say(format!("one of {} is required{when}", fields.join(", "))),
                    allowed: Vec::new(),
                    related: Vec::new(),
                });
            }
        }
        Then::Enum(f, allowed) => {
            let value = body.get(*f);
            if is_present(value) && !allowed.iter().any(|lit| lit_matches(lit, value)) && !already_reported(out, f) {
                let list: Vec<String> = allowed.iter().map(lit_text).collect();
                out.push(
                    Violation::new(
                        f,
                        ViolationKind::Conditional,
                        say(format!("{f} must be one of: {}{when}", list.join(", "))),
                    )
                    .with_allowed(list),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(endpoint: Endpoint, body: serde_json::Value, strictness: Strictness) -> Vec<String> {
        let Value::Object(map) = body else {
            panic!("body must be an object")
        };
        validate(endpoint, &map, strictness)
            .into_iter()
            .map(|v| v.message)
            .collect()
    }

    fn client(endpoint: Endpoint, body: serde_json::Value) -> Vec<String> {
        check(endpoint, body, Strictness::Client)
    }

    #[test]
    fn minimal_requests_pass() {
        assert!(client(Endpoint::TextToVideo, json!({"model": "kling-3.0", "prompt": "a lake"})).is_empty());
        assert!(client(Endpoint::ExtendVideo, json!({"source_task_id": "t-1"})).is_empty());
        let avatar = json!({"model": "kling-ai-avatar-pro", "prompt": "hi", "source_image_url": "https://x.io/a.png", "source_audio_url": "https://x.io/a.mp3"});
        assert!(client(Endpoint::AiAvatar, avatar).is_empty());
    }

    #[test]
    fn unknown_model_lists_the_models_sorted() {
        let errors = client(Endpoint::MotionControl, json!({"model": "kling-9"}));
        assert_eq!(errors, ["model must be one of: kling-3.0, kling-v2.6"]);
        assert_eq!(
            client(Endpoint::TextToVideo, json!({"prompt": "x"})),
            ["model is required"]
        );
    }

    #[test]
    fn false_counts_as_present_for_forbidden_fields() {
        let errors = client(
            Endpoint::TextToVideo,
            json!({"model": "kling-v3-turbo-text-to-video", "prompt": "a", "enable_sound": false}),
        );
        assert_eq!(
            errors,
            ["enable_sound is not allowed when model is kling-v3-turbo-text-to-video"]
        );
        // Null and blank values are dropped before sending, as the SDKs do.
        let errors = client(
            Endpoint::TextToVideo,
            json!({"model": "kling-v3-turbo-text-to-video", "prompt": "a", "enable_sound": null, "negative_prompt": " "}),
        );
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn v26_sound_needs_pro_and_last_frame_needs_pro_and_five_seconds() {
        let t2v = |body| client(Endpoint::TextToVideo, body);
        assert_eq!(
            t2v(json!({"model": "kling-v2.6", "prompt": "a", "enable_sound": true})),
            ["enable_sound: true requires mode: pro on kling-v2.6"]
        );
        assert!(t2v(json!({"model": "kling-v2.6", "prompt": "a", "enable_sound": true, "mode": "pro"})).is_empty());
        let i2v = json!({"model": "kling-v2.6", "prompt": "a", "first_frame_image_url": "https://x.io/a.png",
                         "last_frame_image_url": "https://x.io/b.png", "mode": "pro", "duration_seconds": 10});
        assert_eq!(
            client(Endpoint::ImageToVideo, i2v),
            ["last_frame_image_url on kling-v2.6 requires mode: pro and duration_seconds: 5"]
        );
    }

    #[test]
    fn edit_video_source_rules() {
        let edit = |body| client(Endpoint::EditVideo, body);
        assert_eq!(
            edit(json!({"model": "kling-v3-omni-edit", "prompt": "a", "aspect_ratio": "auto"})),
            ["one of source_video_url, source_task_id is required"]
        );
        let both = edit(
            json!({"model": "kling-v3-omni-edit", "prompt": "a", "aspect_ratio": "auto", "source_video_url": "https://x.io/v.mp4", "source_task_id": "t"}),
        );
        assert_eq!(both, ["source_task_id is not allowed when source_video_url is present"]);
        let wrong_ratio =
            edit(json!({"model": "kling-v3-omni-edit", "prompt": "a", "aspect_ratio": "16:9", "source_task_id": "t"}));
        assert_eq!(
            wrong_ratio,
            ["aspect_ratio must be one of: auto when reference_image_urls is absent"]
        );
        let with_refs = edit(
            json!({"model": "kling-v3-omni-reference", "prompt": "a", "aspect_ratio": "auto", "source_task_id": "t",
                                    "reference_image_urls": ["https://x.io/a.png"], "enable_sound": true}),
        );
        assert_eq!(
            with_refs,
            [
                "aspect_ratio must be one of: 16:9, 9:16, 1:1 when reference_image_urls is present",
                "enable_sound must be false on kling-v3-omni-reference edits"
            ]
        );
    }

    #[test]
    fn multi_shot_items_are_checked() {
        let body = json!({"model": "kling-3.0", "multi_shots": true, "enable_sound": true,
                          "multi_prompt": [{"prompt": "a", "duration_seconds": 3}, {"prompt": "b", "duration_seconds": 13}]});
        assert_eq!(
            client(Endpoint::TextToVideo, body),
            ["multi_prompt[1].duration_seconds must be between 1 and 12"]
        );
    }

    #[test]
    fn o1_reference_media_must_be_public_and_marked() {
        let body = json!({"model": "kling-o1", "prompt": "<<<image_1>>> meets <<<image_3>>>",
                          "reference_image_urls": ["https://127.0.0.1/a.png", "http://localhost/b.png", "https://x.io/c.gif"]});
        let errors = client(Endpoint::TextToVideo, body);
        assert!(
            errors
                .iter()
                .any(|e| e.contains("reference_image_urls[0] must be a public URL (127.0.0.1")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.contains("reference_image_urls[1] must be a public URL (not localhost)")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.contains("reference_image_urls[2] must end in .jpg, .jpeg, .png")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("<<<image_2>>> is missing")),
            "{errors:?}"
        );
        let ok = json!({"model": "kling-o1", "prompt": "<<<image_1>>> waves", "reference_image_urls": ["https://x.io/a.png"]});
        assert!(client(Endpoint::TextToVideo, ok).is_empty());
    }

    #[test]
    fn server_strictness_ignores_undocumented_fields_only() {
        let body = json!({"model": "kling-3.0", "prompt": "a", "mode": "pro", "something_new": 1});
        assert_eq!(check(Endpoint::TextToVideo, body.clone(), Strictness::Client).len(), 2);
        assert!(check(Endpoint::TextToVideo, body, Strictness::Server).is_empty());
        let forbidden = json!({"model": "kling-3.0", "prompt": "a", "reference_video_url": "https://x.io/v.mp4"});
        assert_eq!(check(Endpoint::TextToVideo, forbidden, Strictness::Server).len(), 1);
    }
}
