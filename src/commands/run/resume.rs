//! What a resume keeps from the run before it: a flag given again replaces the recorded value
//! (and says so), a recorded one is kept, and the printed resume command spells every setting
//! that matters out, so following it can never run with another cap, pace or target.

use crate::util::money::Money;
use std::io::Write;

/// The settings a printed resume command spells out, so that following it can never run with
/// another cap, pace or target than the run it resumes.
pub(super) struct ResumeSettings {
    pub(super) cap: Option<Money>,
    pub(super) rate: f64,
    pub(super) concurrency: u32,
    pub(super) api_base: Option<String>,
    pub(super) simulate: bool,
}

/// A flag given again replaces the recorded value (and the run says so); otherwise the recorded
/// one is kept; a folder without one takes the manifest's `limits:`.
pub(super) fn keep_or_replace<T: PartialEq + std::fmt::Display + Copy>(
    flag: &str,
    given: Option<T>,
    recorded: Option<T>,
    manifest: Option<T>,
    stderr: &mut dyn Write,
) -> Option<T> {
    match (given, recorded) {
        (Some(g), Some(r)) if g != r => {
            let _ = writeln!(stderr, "note: {flag} {g} replaces the {r} this folder's run recorded");
            Some(g)
        }
        (Some(g), _) => Some(g),
        (None, Some(r)) => {
            if let Some(m) = manifest.filter(|m| *m != r) {
                let _ = writeln!(
                    stderr,
                    "note: keeping this folder's recorded {flag} {r} (the manifest's limits say {m}); give {flag} to change it"
                );
            }
            Some(r)
        }
        (None, None) => manifest,
    }
}

/// The command line that resumes this run, quoted for a POSIX shell, with a templated `--out`
/// replaced by the folder it named this time, and every setting that matters spelled out.
pub(super) fn resume_command(given_out: &std::path::Path, out: &std::path::Path, settings: &ResumeSettings) -> String {
    let quote = |a: String| {
        if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c)) {
            a
        } else {
            format!("'{}'", a.replace('\'', "'\\''"))
        }
    };
    let given = given_out.to_string_lossy().into_owned();
    let resolved = out.to_string_lossy().into_owned();
    let mut words = vec!["kling-batch".to_string()];
    words.extend(
        std::env::args()
            .skip(1)
            .map(|a| {
                if a == given {
                    resolved.clone()
                } else if let Some(v) = a.strip_prefix("--out=").filter(|v| *v == given) {
                    format!("--out={v}").replace(&given, &resolved)
                } else {
                    a
                }
            })
            .map(quote),
    );
    let given = |flag: &str| {
        words
            .iter()
            .any(|w| w == flag || w.starts_with(&format!("{flag}=")) || w.starts_with(&format!("'{flag}=")))
    };
    let mut extra: Vec<String> = Vec::new();
    if settings.simulate {
        if !given("--simulate") {
            extra.push("--simulate".into());
        }
    } else if let Some(base) = settings.api_base.as_ref().filter(|_| !given("--api-base")) {
        extra.extend(["--api-base".to_string(), quote(base.clone())]);
    }
    if let Some(cap) = settings.cap.filter(|_| !given("--max-spend")) {
        extra.extend(["--max-spend".to_string(), format!("{:.2}", cap.usd())]);
    }
    if !given("--rate") {
        extra.extend(["--rate".to_string(), settings.rate.to_string()]);
    }
    if !given("--concurrency") {
        extra.extend(["--concurrency".to_string(), settings.concurrency.to_string()]);
    }
    words.extend(extra);
    words.join(" ")
}
