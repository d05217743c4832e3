//! The printed resume command — at the end of a run and in `status` — made in one place: it
//! spells out every setting that matters, so following it can never run with another cap, pace or
//! target than the run it resumes.

use crate::journal::RecordedSettings;
use crate::util::money::Money;

/// The settings a printed resume command spells out, so that following it can never run with
/// another cap, pace or target than the run it resumes.
pub(crate) struct ResumeSettings {
    pub(crate) cap: super::settings::Cap,
    /// None where nothing was recorded (a journal of an older version): left to the resume.
    pub(crate) rate: Option<f64>,
    pub(crate) concurrency: Option<u32>,
    pub(crate) max_attempts: u32,
    pub(crate) api_base: Option<String>,
    pub(crate) simulate: bool,
    /// `--out` when it is not the run's folder (an `s3://` address; the folder is `--state`'s).
    pub(crate) output: Option<String>,
    /// The simulator's speed, for a simulated run.
    pub(crate) time_scale: Option<f64>,
}

impl ResumeSettings {
    /// A run's, from its settled settings: what it records and what its resume line spells out.
    pub(super) fn of(
        settled: &super::settings::Settled,
        place: &super::request::Place,
        base_url: &str,
    ) -> ResumeSettings {
        let simulate = settled.service.simulate;
        ResumeSettings {
            cap: settled.cap,
            rate: Some(settled.rate),
            concurrency: Some(settled.concurrency),
            max_attempts: settled.max_attempts,
            api_base: (!simulate).then(|| base_url.to_string()),
            simulate,
            output: place.bucket.as_ref().map(ToString::to_string),
            time_scale: simulate.then_some(settled.service.time_scale),
        }
    }

    /// As a folder's journal recorded them (for `status`).
    pub(crate) fn recorded(settings: &RecordedSettings, cap: Option<Money>) -> ResumeSettings {
        use super::settings::Cap;
        ResumeSettings {
            cap: match (settings.cap_source.as_deref(), cap) {
                (Some("none"), _) => Cap::Lifted,
                (Some("default"), _) | (_, None) => Cap::Default,
                (_, Some(cap)) => Cap::Given(cap),
            },
            rate: settings.rate,
            concurrency: settings.concurrency,
            max_attempts: settings.max_attempts.unwrap_or(super::settings::DEFAULT_MAX_ATTEMPTS),
            api_base: settings.api_base.clone(),
            simulate: settings.simulate,
            output: settings.output.clone(),
            time_scale: settings.time_scale,
        }
    }

    /// What the run records for a later resume: the same settings, as the journal (or the sweep)
    /// keeps them — the one place they are written from.
    pub(crate) fn to_recorded(&self) -> RecordedSettings {
        RecordedSettings {
            time_scale: self.time_scale.filter(|_| self.simulate),
            rate: self.rate,
            concurrency: self.concurrency,
            max_attempts: Some(self.max_attempts),
            api_base: self.api_base.clone(),
            simulate: self.simulate,
            cap_source: Some(self.cap.source().to_string()),
            output: self.output.clone(),
        }
    }
}

/// `words` (a command line, already quoted) with every setting in `settings` it does not give
/// itself added.
pub(crate) fn resume_line(mut words: Vec<String>, settings: &ResumeSettings) -> String {
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
    if let Some(rate) = settings.rate.filter(|_| !given("--rate")) {
        extra.extend(["--rate".to_string(), rate.to_string()]);
    }
    if let Some(concurrency) = settings.concurrency.filter(|_| !given("--concurrency")) {
        extra.extend(["--concurrency".to_string(), concurrency.to_string()]);
    }
    if !given("--max-attempts") && settings.max_attempts != super::settings::DEFAULT_MAX_ATTEMPTS {
        extra.extend(["--max-attempts".to_string(), settings.max_attempts.to_string()]);
    }
    words.extend(extra);
    words.join(" ")
}

/// A word for a POSIX shell.
pub(crate) fn quote(a: String) -> String {
    crate::util::shell::quote(&a)
}

/// The command line that resumes this run — this run's own, quoted for a POSIX shell, with a
/// templated `--out` replaced by the folder it named this time — and every setting that matters
/// spelled out.
pub(super) fn resume_command(place: &super::request::Place, settings: &ResumeSettings) -> String {
    let given = place.given_out.to_string_lossy().into_owned();
    let resolved = settings
        .output
        .clone()
        .unwrap_or_else(|| place.out.to_string_lossy().into_owned());
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
    resume_line(words, settings)
}
