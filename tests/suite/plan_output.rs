//! Snapshots of what `plan` shows for the example manifests, as a table and as JSON, and
//! `validate`'s one-line verdict.

use crate::common::run;

const EXAMPLES: &[&str] = &[
    "manifests/example.yaml",
    "manifests/prompts.csv",
    "manifests/nightly.yaml",
];

#[test]
fn plan_tables() {
    for manifest in EXAMPLES {
        let out = run(&["plan", manifest]);
        assert_eq!(out.code, 0, "plan {manifest} failed: {}", out.stderr);
        assert!(out.stderr.is_empty(), "plan {manifest} wrote to stderr: {}", out.stderr);
        insta::assert_snapshot!(format!("plan_table__{}", manifest.replace(['/', '.'], "_")), out.stdout);
    }
}

#[test]
fn plan_json() {
    for manifest in EXAMPLES {
        let out = run(&["plan", manifest, "--json"]);
        assert_eq!(out.code, 0, "plan --json {manifest} failed: {}", out.stderr);
        let value: serde_json::Value = serde_json::from_str(&out.stdout).expect("plan --json prints JSON");
        let jobs = value["jobs"].as_array().expect("jobs is a list");
        assert_eq!(value["totals"]["jobs"].as_u64(), Some(jobs.len() as u64));
        insta::assert_json_snapshot!(format!("plan_json__{}", manifest.replace(['/', '.'], "_")), value);
    }
}

#[test]
fn example_sweep_is_small_and_csv_metadata_travels() {
    let out = run(&["plan", "manifests/example.yaml", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let jobs = value["jobs"].as_array().unwrap();
    assert!(
        (8..=16).contains(&jobs.len()),
        "the small sweep has {} jobs",
        jobs.len()
    );

    let out = run(&["plan", "manifests/prompts.csv", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(value["jobs"][0]["meta"]["owner"], "ana");
    assert_eq!(
        value["jobs"][0]["request"]["duration_seconds"], 5,
        "CSV cells are typed"
    );
    assert_eq!(value["jobs"][0]["request"]["enable_sound"], false);
}

#[test]
fn validate_says_valid() {
    let out = run(&["validate", "manifests/example.yaml"]);
    assert_eq!(out.code, 0);
    assert_eq!(
        out.stdout,
        "manifests/example.yaml: valid — 16 jobs, estimated $18.60\n"
    );
}

#[test]
fn usage_errors_have_their_own_code() {
    let out = run(&["plan"]);
    assert_eq!(out.code, 64, "{}", out.stderr);
    assert!(out.stderr.contains("MANIFEST"), "{}", out.stderr);
    let out = run(&["--help"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("Exit codes"));
}
