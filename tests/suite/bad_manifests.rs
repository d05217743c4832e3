//! The bad-manifest corpus: each file under tests/bad is refused with the validation exit code
//! and a message that names the right place (file:line:column, or file:row:column for CSV), says
//! what is wrong, and hints at the fix.

use crate::common::run;
use std::io::Write;

const INVALID: i32 = 4;

struct Case {
    file: &'static str,
    /// `line:column` of the problem, or "" when it concerns the whole file.
    at: &'static str,
    message: &'static str,
    hint: Option<&'static str>,
}

const fn case(file: &'static str, at: &'static str, message: &'static str, hint: Option<&'static str>) -> Case {
    Case {
        file,
        at,
        message,
        hint,
    }
}

const CASES: &[Case] = &[
    case(
        "only_without_needs.yaml",
        "5:11",
        "only: chooses among a step's parents, and this entry is not a step",
        Some("add `needs: <id>`"),
    ),
    case(
        "only_unreadable.yaml",
        "5:76",
        "only: `~` is not a comparison (>=, >, =, <=, <)",
        Some("`only: picked`"),
    ),
    case(
        "needs_unknown.yaml",
        "5:12",
        "needs `bsae`, but no prompt entry has that id",
        Some("did you mean `base`?"),
    ),
    case(
        "needs_cycle.yaml",
        "5:12",
        "needs make a cycle: longer → longest → longer",
        Some("the first entry of a chain has no needs"),
    ),
    case(
        "needs_incompatible_parent.yaml",
        "5:12",
        "`longer` cannot continue the jobs of `base`: extend_video continues kling-v2.5-turbo-text-to-video-pro or kling-v2.5-turbo-image-to-video-pro tasks (or their extensions), not kling-3.0 tasks",
        Some("continue its videos with edit_video"),
    ),
    case(
        "needs_with_source_task_id.yaml",
        "7:21",
        "this entry needs `base`, so its source_task_id is each parent job's task",
        Some("remove source_task_id from the entry"),
    ),
    case(
        "needs_on_text_to_video.yaml",
        "6:12",
        "text_to_video does not continue a task",
        Some("set `endpoint: extend_video`"),
    ),
    case(
        "misspelt_field.yaml",
        "3:3",
        "`duraton_seconds` is not a request field",
        Some("did you mean `duration_seconds`?"),
    ),
    case(
        "misspelt_top_key.yaml",
        "3:1",
        "`promts` is not a top-level key",
        Some("did you mean `prompts`?"),
    ),
    case(
        "quoted_integer.yaml",
        "5:23",
        "duration_seconds must be an integer",
        Some("write 5 without quotes"),
    ),
    case(
        "duration_not_allowed.yaml",
        "5:23",
        "duration_seconds must be one of: 5, 10",
        None,
    ),
    case(
        "forbidden_field.yaml",
        "4:22",
        "negative_prompt is not allowed when model is kling-v2.6",
        Some("remove `negative_prompt`"),
    ),
    case(
        "matrix_key_unsupported.yaml",
        "8:18",
        "enable_sound is not allowed when model is kling-v2.5-turbo-image-to-video-pro",
        Some("on_unsupported: adapt"),
    ),
    case("empty_prompt.yaml", "5:5", "the prompt is empty", None),
    case(
        "unknown_model.yaml",
        "2:10",
        "`kling-3` is not a text_to_video model",
        Some("did you mean `kling-3.0`?"),
    ),
    case(
        "model_of_other_endpoint.yaml",
        "5:12",
        "`kling-v2.1-pro` is not a text_to_video model",
        Some("set `endpoint: image_to_video`"),
    ),
    case(
        "enum_typo.yaml",
        "3:22",
        "output_resolution must be one of: 720p, 1080p, 4k",
        Some("did you mean `1080p`?"),
    ),
    case(
        "unknown_endpoint.yaml",
        "2:13",
        "unknown endpoint `text2video`",
        Some("did you mean `text_to_video`?"),
    ),
    case(
        "unsafe_id.yaml",
        "4:9",
        "is not usable as a file name",
        Some("try `etc-passwd`"),
    ),
    case(
        "duplicate_request.yaml",
        "6:5",
        "makes the same request as job first-",
        Some("use `repeat:`"),
    ),
    case(
        "unused_variable.yaml",
        "5:20",
        "variable `time` is not used",
        Some("write {time} in the prompt"),
    ),
    case(
        "undefined_placeholder.yaml",
        "4:13",
        "prompt uses {tiem}, which is not among this entry's vars",
        Some("did you mean {time}?"),
    ),
    case(
        "huge_expansion.yaml",
        "",
        "the manifest expands to 2340000 jobs; the limit is 1000000",
        Some("split the sweep"),
    ),
    case("alias_bomb.yaml", "", "expands its aliases too many times", None),
    case(
        "not_a_mapping.yaml",
        "1:1",
        "a manifest must be a mapping, found a list",
        Some("manifests/example.yaml"),
    ),
    case("bad_indentation.yaml", "5:4", "not valid YAML", Some("indentation")),
    case(
        "misspelt_column.csv",
        "1:3",
        "`modle` is not a known column",
        Some("did you mean `model`?"),
    ),
    case(
        "bad_cell.csv",
        "3:4",
        "duration_seconds must be a whole number (found `5s`)",
        None,
    ),
    case(
        "short_row.csv",
        "3:1",
        "this row has 2 cells but the header has 4",
        Some("quote cells"),
    ),
    case(
        "multi_shot_without_sound.yaml",
        "5:18",
        "enable_sound must be true when multi_shots is true",
        None,
    ),
    case(
        "exclude_unknown_axis.yaml",
        "8:45",
        "`enable_sound` is not an axis of the matrix",
        None,
    ),
    case(
        "zero_concurrency.yaml",
        "6:16",
        "concurrency must be a whole number from 1 to 10000",
        None,
    ),
    case(
        "missing_prompts_csv.yaml",
        "3:14",
        "cannot read tests/bad/no_such_file.csv: no such file",
        Some("check the path"),
    ),
    case(
        "missing_first_frame.yaml",
        "5:5",
        "first_frame_image_url is required",
        None,
    ),
    case("o1_missing_marker.yaml", "4:13", "<<<image_1>>> is missing", None),
    case(
        "matrix_scalar.yaml",
        "6:17",
        "matrix.aspect_ratio must be a list of values",
        Some("`aspect_ratio: [a, b]`"),
    ),
    case(
        "wrong_extension.txt",
        "",
        "a manifest must be a .yaml, .yml or .csv file",
        None,
    ),
];

fn assert_refused(path: &str, at: &str, message: &str, hint: Option<&str>) {
    for command in ["validate", "plan"] {
        let out = run(&[command, path]);
        assert_eq!(out.code, INVALID, "{command} {path}: exit code\n{}", out.stderr);
        assert!(
            out.stdout.is_empty(),
            "{command} {path} printed a plan for a bad manifest:\n{}",
            out.stdout
        );
        let place = if at.is_empty() {
            format!("error: {path}: ")
        } else {
            format!("error: {path}:{at}: ")
        };
        let line = out
            .stderr
            .lines()
            .find(|l| l.starts_with(&place) && l.contains(message))
            .unwrap_or_else(|| panic!("{command} {path}: no `{place}…{message}` in\n{}", out.stderr));
        if let Some(hint) = hint {
            let after: Vec<&str> = out
                .stderr
                .lines()
                .skip_while(|l| *l != line)
                .skip(1)
                .take_while(|l| l.starts_with("  hint: "))
                .collect();
            assert!(
                after.iter().any(|h| h.contains(hint)),
                "{command} {path}: no hint `{hint}` after `{line}` in\n{}",
                out.stderr
            );
        }
        assert!(
            out.stderr.trim_end().ends_with("nothing was submitted"),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
}

#[test]
fn corpus_has_at_least_twenty_cases_and_covers_every_file() {
    assert!(CASES.len() >= 20);
    let dir = crate::common::repo_root().join("tests/bad");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(CASES.iter().any(|c| c.file == name), "tests/bad/{name} has no case");
    }
}

#[test]
fn each_bad_manifest_is_refused_at_the_right_place() {
    for c in CASES {
        assert_refused(&format!("tests/bad/{}", c.file), c.at, c.message, c.hint);
    }
}

#[test]
fn every_problem_is_reported_in_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.yaml");
    std::fs::write(
        &path,
        "defaults:\n  model: kling-3.0\n  duraton_seconds: 5\nprompts:\n  - prompt: \"a\"\n    output_resolution: 1080\n  - \"\"\nmatrix:\n  aspect_ratio: [\"16:9\", \"4:3\"]\n",
    )
    .unwrap();
    let out = run(&["validate", path.to_str().unwrap()]);
    assert_eq!(out.code, INVALID);
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: ") && l.contains("many.yaml:"))
        .collect();
    let lines: Vec<&str> = errors.iter().map(|e| e.split(':').nth(2).unwrap()).collect();
    assert_eq!(
        lines,
        ["3", "6", "7", "9"],
        "one error per problem, in file order:\n{}",
        out.stderr
    );
}

#[test]
fn files_that_cannot_be_manifests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    let mut f = std::fs::File::create(&big).unwrap();
    let line = format!("# {}\n", "x".repeat(1022));
    for _ in 0..(16 * 1024 + 1) {
        f.write_all(line.as_bytes()).unwrap();
    }
    drop(f);
    let latin1 = dir.path().join("latin1.csv");
    std::fs::write(&latin1, b"id,prompt\ncafe,caf\xe9 au lait\n").unwrap();
    let folder = dir.path().join("folder.yaml");
    std::fs::create_dir(&folder).unwrap();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();

    assert_refused(
        &path(&big),
        "",
        "the file is larger than 16 MiB",
        Some("split the sweep"),
    );
    assert_refused(
        &path(&latin1),
        "",
        "the file is not UTF-8 text",
        Some("save it as UTF-8"),
    );
    assert_refused(&path(&folder), "", "is a folder, not a manifest file", None);
    assert_refused(
        "tests/bad/no_such_manifest.yaml",
        "",
        "no such file",
        Some("check the path"),
    );
}

#[test]
fn a_placeholder_in_source_task_id_is_refused_at_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("chain.yaml");
    std::fs::write(
        &manifest,
        "prompts:\n  - endpoint: extend_video\n    prompt: \"and on\"\n    source_task_id: \"{from:step1}\"\n",
    )
    .unwrap();
    let out = crate::common::run(&["plan", manifest.to_str().unwrap()]);
    assert_eq!(out.code, 4, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("chain.yaml:4:"), "{}", out.stderr);
    assert!(
        out.stderr.contains("source_task_id must be the id of a completed task"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_step_whose_fan_out_passes_the_job_cap_is_refused_at_its_needs() {
    // 1,000 parent jobs × 1,001 variants of the step: past the 1,000,000-job cap only once the
    // step is multiplied out.
    let values = |n: usize| (0..n).map(|i| format!("v{i}")).collect::<Vec<_>>().join(", ");
    let text = format!(
        "defaults: {{ model: kling-v2.5-turbo-text-to-video-pro, duration_seconds: 5 }}\nprompts:\n  - id: base\n    prompt: \"a boat {{n}}\"\n    vars: {{ n: [{}] }}\n  - id: longer\n    needs: base\n    endpoint: extend_video\n    prompt: \"and on {{m}}\"\n    vars: {{ m: [{}] }}\n",
        values(1000),
        values(1001)
    );
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("fan.yaml");
    std::fs::write(&manifest, text).unwrap();
    let out = crate::common::run(&["plan", manifest.to_str().unwrap()]);
    assert_eq!(out.code, INVALID, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("fan.yaml:7:12:"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("this step makes 1001000 jobs (1000 parent jobs × 1001 requests)"),
        "{}",
        out.stderr
    );
}
