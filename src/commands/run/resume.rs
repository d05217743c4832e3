//! The printed resume command: it spells out every setting that matters, so following it can
//! never run with another cap, pace or target than the run it resumes.

/// The settings a printed resume command spells out, so that following it can never run with
/// another cap, pace or target than the run it resumes.
pub(super) struct ResumeSettings {
    pub(super) cap: super::settings::Cap,
    pub(super) rate: f64,
    pub(super) concurrency: u32,
    pub(super) max_attempts: u32,
    pub(super) api_base: Option<String>,
    pub(super) simulate: bool,
    /// `--out` when it is not the run's folder (an `s3://` address; the folder is `--state`'s).
    pub(super) output: Option<String>,
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
    let resolved = settings
        .output
        .clone()
        .unwrap_or_else(|| out.to_string_lossy().into_owned());
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
    if !given("--max-spend") {
        match settings.cap {
            super::settings::Cap::Given(cap) => extra.extend(["--max-spend".to_string(), format!("{:.2}", cap.usd())]),
            super::settings::Cap::Lifted => extra.extend(["--max-spend".to_string(), "none".to_string()]),
            // A default cap is the estimate, made again by the resume.
            super::settings::Cap::Default => {}
        }
    }
    if !given("--rate") {
        extra.extend(["--rate".to_string(), settings.rate.to_string()]);
    }
    if !given("--concurrency") {
        extra.extend(["--concurrency".to_string(), settings.concurrency.to_string()]);
    }
    if !given("--max-attempts") && settings.max_attempts != super::settings::DEFAULT_MAX_ATTEMPTS {
        extra.extend(["--max-attempts".to_string(), settings.max_attempts.to_string()]);
    }
    words.extend(extra);
    words.join(" ")
}
