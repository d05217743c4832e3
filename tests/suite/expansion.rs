//! Expansion semantics on small manifests: GitHub Actions include/exclude, `on_unsupported`,
//! defaults that do not fit a model, `null`, and ids that survive a larger `repeat:`.

use kling_batch::manifest;
use kling_batch::plan::{self, Plan};
use serde_json::json;

fn plan_yaml(text: &str) -> Plan {
    try_plan(text).unwrap_or_else(|e| panic!("manifest refused: {e}"))
}

fn try_plan(text: &str) -> Result<Plan, String> {
    crate::common::plan_from_yaml(text)
}

fn combos(plan: &Plan, keys: &[&str]) -> Vec<Vec<String>> {
    plan.jobs
        .iter()
        .map(|j| {
            keys.iter()
                .map(|k| j.request.get(k).map_or("-".into(), |v| v.to_string()))
                .collect()
        })
        .collect()
}

#[test]
fn include_extends_matching_combinations_and_adds_the_rest() {
    let plan = plan_yaml(
        r#"
defaults: { model: kling-3.0 }
prompts: ["a lake"]
matrix:
  aspect_ratio: ["16:9", "9:16"]
  enable_sound: [false, true]
  exclude:
    - { aspect_ratio: "9:16", enable_sound: true }
  include:
    - { aspect_ratio: "16:9", output_resolution: 1080p }
    - { aspect_ratio: "1:1", enable_sound: false }
"#,
    );
    assert_eq!(
        combos(&plan, &["aspect_ratio", "enable_sound", "output_resolution"]),
        vec![
            vec!["\"16:9\"", "false", "\"1080p\""],
            vec!["\"16:9\"", "true", "\"1080p\""],
            vec!["\"9:16\"", "false", "-"],
            vec!["\"1:1\"", "false", "-"],
        ]
    );
    assert_eq!(plan.swept, ["aspect_ratio", "enable_sound", "output_resolution"]);
}

#[test]
fn adapt_leaves_out_keys_and_skips_refused_values() {
    let text = r#"
defaults: { duration_seconds: 5 }
prompts: ["a lake"]
matrix:
  model: [kling-3.0, kling-v2.6]
  output_resolution: [720p, 1080p]
  duration_seconds: [5, 7]
"#;
    let strict = try_plan(text).unwrap_err();
    assert!(
        strict.contains("output_resolution is not allowed when model is kling-v2.6"),
        "{strict}"
    );
    let plan = plan_yaml(&format!("{text}on_unsupported: adapt\n"));
    // kling-3.0: 2 resolutions × 2 durations; kling-v2.6: resolution left out (2 → 1), 7 s skipped.
    assert_eq!(
        plan.jobs.len(),
        5,
        "{:#?}",
        combos(&plan, &["model", "output_resolution", "duration_seconds"])
    );
    let v26: Vec<_> = plan.jobs.iter().filter(|j| j.model() == Some("kling-v2.6")).collect();
    assert_eq!(v26.len(), 1);
    assert!(!v26[0].request.fields().contains_key("output_resolution"));
    assert!(
        v26[0].params.get("output_resolution").is_none(),
        "params show what was sent"
    );
    assert_eq!(plan.skipped.len(), 2, "{:#?}", plan.skipped);
    assert!(
        plan.skipped
            .iter()
            .all(|s| s.reason.contains("duration_seconds must be one of: 5, 10"))
    );
    assert!(plan.notes.iter().any(|n| n.contains("merged")), "{:?}", plan.notes);
}

#[test]
fn a_prompt_no_combination_suits_is_an_error_even_when_adapting() {
    let err = try_plan(
        r#"
defaults: { model: kling-v2.6 }
prompts: ["a lake"]
matrix: { duration_seconds: [3, 7] }
on_unsupported: adapt
"#,
    )
    .unwrap_err();
    assert!(err.contains("no matrix combination suits this prompt"), "{err}");
}

#[test]
fn defaults_a_model_does_not_take_are_not_sent_and_null_unsets() {
    let plan = plan_yaml(
        r#"
defaults: { model: kling-3.0, output_resolution: 1080p, negative_prompt: "blur" }
prompts:
  - "a lake"
  - { prompt: "a river", model: kling-v2.6 }
  - { prompt: "a sea", output_resolution: null }
"#,
    );
    let by_prompt = |p: &str| plan.jobs.iter().find(|j| j.prompt().as_deref() == Some(p)).unwrap();
    assert_eq!(
        by_prompt("a lake").request.fields()["output_resolution"],
        json!("1080p")
    );
    assert!(!by_prompt("a river").request.fields().contains_key("output_resolution"));
    assert!(!by_prompt("a river").request.fields().contains_key("negative_prompt"));
    assert!(!by_prompt("a sea").request.fields().contains_key("output_resolution"));
    assert!(
        plan.notes
            .iter()
            .any(|n| n == "defaults.output_resolution is not sent to 1 job(s) on kling-v2.6, which does not take it"),
        "{:?}",
        plan.notes
    );
}

#[test]
fn raising_repeat_keeps_existing_ids() {
    let ids = |repeat: u32| -> Vec<String> {
        let plan = plan_yaml(&format!(
            "defaults: {{ model: kling-3.0 }}\nprompts: [\"a lake\"]\nrepeat: {repeat}\n"
        ));
        plan.jobs.iter().map(|j| j.id.to_string()).collect()
    };
    let one = ids(1);
    let three = ids(3);
    assert_eq!(three.len(), 3);
    assert_eq!(three[0], one[0]);
    assert_eq!(three[1], format!("{}-r2", one[0]));
    assert!(one[0].starts_with("a-lake-"), "{}", one[0]);
}

#[test]
fn template_variables_multiply_and_render() {
    let plan = plan_yaml(
        r#"
defaults: { model: kling-3.0 }
prompts:
  - id: street
    prompt: "A {style} street at {time}, {{not a var}}"
    vars: { style: [noir, pop], time: [dawn, dusk, night] }
"#,
    );
    assert_eq!(plan.jobs.len(), 6);
    assert_eq!(
        plan.jobs[0].prompt().as_deref(),
        Some("A noir street at dawn, {not a var}")
    );
    assert_eq!(plan.jobs[0].params.get("style").cloned().unwrap(), json!("noir"));
    assert!(plan.jobs.iter().all(|j| j.id.as_str().starts_with("street-")));
}

#[test]
fn pricing_overrides_win_and_estimates_use_model_defaults() {
    let plan = plan_yaml(
        r#"
defaults: { model: kling-3.0 }
prompts: ["a lake"]
matrix: { output_resolution: [720p, 1080p] }
pricing:
  - { model: kling-3.0, output_resolution: 1080p, cents_per_second: 50 }
"#,
    );
    let cost = |res: &str| {
        plan.jobs
            .iter()
            .find(|j| j.request.fields()["output_resolution"] == json!(res))
            .unwrap()
            .estimate
            .cost
    };
    // No duration given: kling-3.0's documented default of 5 s.
    assert_eq!(cost("720p").to_string(), "$0.70");
    assert_eq!(cost("1080p").to_string(), "$2.50");
}

/// Large plans expand on several threads, a slice at a time; the plan (ids, requests, order,
/// notes) and the problems (and their order) are the same as on one thread in one piece.
#[test]
fn the_plan_does_not_depend_on_threads_or_slices() {
    let expand = |text: &str, threads: usize, chunk: usize| {
        let manifest = manifest::from_yaml(text, std::path::Path::new("m.yaml")).unwrap();
        plan::expand_with(&manifest, Some(threads), chunk)
            .map(|p| {
                let jobs: Vec<(String, String, String)> = p
                    .jobs
                    .iter()
                    .map(|j| (j.id.to_string(), j.request.as_str().to_string(), j.label.to_string()))
                    .collect();
                (jobs, p.notes, p.skipped)
            })
            .map_err(|d| d.iter().map(ToString::to_string).collect::<Vec<_>>())
    };
    let prompts: Vec<String> = (0..40)
        .map(|i| format!("  - {{ prompt: \"shot {i} of a {{style}} harbour\", vars: {{ style: [calm, stormy] }} }}"))
        .collect();
    let good = format!(
        "defaults: {{ model: kling-3.0, duration_seconds: 5, mode: pro }}\non_unsupported: adapt\nmatrix: {{ aspect_ratio: [\"16:9\", \"1:1\"], output_resolution: [720p, 1080p] }}\nprompts:\n{}\n",
        prompts.join("\n")
    );
    let one = expand(&good, 1, usize::MAX).expect("the manifest is valid");
    assert_eq!(one.0.len(), 40 * 2 * 4);
    for (threads, chunk) in [(2, 7), (3, 50), (8, 1)] {
        assert_eq!(
            expand(&good, threads, chunk),
            Ok(one.clone()),
            "{threads} threads, slices of {chunk}"
        );
    }
    // Duplicates across slices and threads, and bad entries: the same problems in the same order.
    let bad = format!(
        "{good}  - {{ prompt: \"shot 3 of a {{style}} harbour\", vars: {{ style: [calm] }} }}\n  - {{ prompt: \"{{nope}}\", vars: {{ x: [a] }} }}\n  - {{ prompt: \"a bay\", duration_seconds: 99 }}\n"
    );
    let one = expand(&bad, 1, usize::MAX).expect_err("the manifest has problems");
    assert!(one.len() >= 6, "{one:#?}");
    assert!(one.iter().any(|p| p.contains("{nope}")), "{one:#?}");
    assert!(one.iter().any(|p| p.contains("duration_seconds")), "{one:#?}");
    for (threads, chunk) in [(2, 7), (3, 50), (8, 1)] {
        assert_eq!(
            expand(&bad, threads, chunk),
            Err(one.clone()),
            "{threads} threads, slices of {chunk}"
        );
    }
}
