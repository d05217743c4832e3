//! Properties of expansion, on manifests generated at random and read from text: the job
//! count is the product of the axes, ids ignore the order things are written in, and ids are
//! unique and filesystem-safe whatever the prompt text.

use kling_batch::plan::{self, Plan};
use proptest::prelude::*;
use proptest::sample::subsequence;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

fn plan_of(doc: &Value) -> Result<Plan, String> {
    crate::common::plan_from_yaml(&serde_yaml::to_string(doc).unwrap())
}

/// A sweep on kling-3.0: distinct prompts (some with a variable), up to four matrix axes of
/// values that model accepts, and a repeat count.
#[derive(Debug, Clone)]
struct Sweep {
    prompts: Vec<(String, Vec<String>)>,
    axes: Vec<(&'static str, Vec<Value>)>,
    repeat: u32,
}

fn sweep() -> impl Strategy<Value = Sweep> {
    let prompts = prop::collection::btree_set("[a-z]{3,12}( [a-z]{2,8}){0,4}", 1..5).prop_flat_map(|texts| {
        let n = texts.len();
        (
            Just(texts.into_iter().collect::<Vec<_>>()),
            prop::collection::vec(prop::collection::btree_set("[a-z]{2,6}", 0..4), n),
        )
            .prop_map(|(texts, vars)| {
                texts
                    .into_iter()
                    .zip(vars.into_iter().map(|v| v.into_iter().collect()))
                    .collect()
            })
    });
    let durations: Vec<Value> = (3..=15).map(|n| json!(n)).collect();
    let aspects = vec![json!("16:9"), json!("9:16"), json!("1:1")];
    let resolutions = vec![json!("720p"), json!("1080p"), json!("4k")];
    let sounds = vec![json!(false), json!(true)];
    let axes = (
        subsequence(durations, 0..=4),
        subsequence(aspects, 0..=3),
        subsequence(resolutions, 0..=3),
        subsequence(sounds, 0..=2),
    )
        .prop_map(|(d, a, r, s)| {
            [
                ("duration_seconds", d),
                ("aspect_ratio", a),
                ("output_resolution", r),
                ("enable_sound", s),
            ]
            .into_iter()
            .filter(|(_, values)| !values.is_empty())
            .collect()
        });
    (prompts, axes, 1u32..4).prop_map(|(prompts, axes, repeat)| Sweep { prompts, axes, repeat })
}

fn document(sweep: &Sweep) -> Value {
    let prompts: Vec<Value> = sweep
        .prompts
        .iter()
        .map(|(text, vars)| {
            if vars.is_empty() {
                json!(text)
            } else {
                json!({ "prompt": format!("{text} in {{mood}} light"), "vars": { "mood": vars } })
            }
        })
        .collect();
    let matrix: serde_json::Map<String, Value> = sweep
        .axes
        .iter()
        .map(|(k, v)| (k.to_string(), Value::Array(v.clone())))
        .collect();
    json!({
        "defaults": { "model": "kling-3.0" },
        "prompts": prompts,
        "matrix": matrix,
        "repeat": sweep.repeat,
    })
}

fn ids_to_requests(plan: &Plan) -> BTreeMap<String, String> {
    plan.jobs
        .iter()
        .map(|j| {
            (
                j.id.to_string(),
                plan::canonical_json(&Value::Object(j.request.fields())),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn job_count_is_the_product_of_the_axes(sweep in sweep()) {
        let plan = plan_of(&document(&sweep)).map_err(TestCaseError::fail)?;
        let per_prompt: usize = sweep.axes.iter().map(|(_, v)| v.len()).product();
        let prompt_variants: usize = sweep.prompts.iter().map(|(_, vars)| vars.len().max(1)).sum();
        prop_assert_eq!(plan.jobs.len(), prompt_variants * per_prompt * sweep.repeat as usize);
    }

    #[test]
    fn ids_do_not_depend_on_order(sweep in sweep(), seed in any::<u64>()) {
        let plan = plan_of(&document(&sweep)).map_err(TestCaseError::fail)?;
        let mut shuffled = sweep.clone();
        // A deterministic shuffle from the seed: reverse or rotate each list.
        let rotate = |n: usize| if n == 0 { 0 } else { (seed as usize) % n };
        let r = rotate(shuffled.prompts.len());
        shuffled.prompts.rotate_left(r);
        shuffled.prompts.reverse();
        for (_, vars) in &mut shuffled.prompts {
            vars.reverse();
        }
        let r = rotate(shuffled.axes.len());
        shuffled.axes.rotate_left(r);
        for (_, values) in &mut shuffled.axes {
            values.reverse();
        }
        let again = plan_of(&document(&shuffled)).map_err(TestCaseError::fail)?;
        prop_assert_eq!(ids_to_requests(&plan), ids_to_requests(&again));
    }

    #[test]
    fn ids_are_unique_and_filesystem_safe(texts in prop::collection::btree_set(any::<String>(), 1..12), long in 0usize..3) {
        let mut prompts: Vec<String> = texts.into_iter().filter(|t| !t.trim().is_empty()).collect();
        if long > 0 {
            prompts.push(format!("../{}", "é/🌊\u{202e}\0".repeat(20_000 * long)));
        }
        prop_assume!(!prompts.is_empty());
        let plan = plan_of(&json!({ "defaults": { "model": "kling-3.0" }, "prompts": prompts, "repeat": 2 }))
            .map_err(TestCaseError::fail)?;
        let mut seen = BTreeSet::new();
        for job in &plan.jobs {
            let id = job.id.as_str();
            prop_assert!(id.len() <= 64, "{} is too long", id);
            prop_assert!(id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)), "{:?}", id);
            prop_assert!(id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric()), "{:?}", id);
            prop_assert!(seen.insert(id.to_string()), "duplicate id {}", id);
        }
        prop_assert_eq!(plan.jobs.len(), prompts.len() * 2);
    }
}
