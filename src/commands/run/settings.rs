//! Raw flags ▶ validated settings, before anything starts (ripgrep's low-level ▶ high-level
//! args). Two pure steps: `Flags::check` refuses bad values with the flag named; `Flags::settle`
//! puts a flag given, the folder's recorded value and the manifest's `limits:` together (a flag
//! replaces a recorded value and says so; a recorded one is kept; the manifest fills the rest).

use crate::cli::RunArgs;
use crate::error::{CommandFailure, Exit};
use crate::journal::RecordedSettings;
use crate::manifest::Limits;
use crate::util::money::Money;

const DEFAULT_CONCURRENCY: u32 = 4;
const DEFAULT_RATE: f64 = 2.0;
const SIMULATE_TIME_SCALE: f64 = 100.0;
const MIN_TIME_SCALE: f64 = 1e-3;
const MAX_TIME_SCALE: f64 = 1e6;
/// One request every 100 s at the slowest; the pacer cannot go faster than this either.
const MIN_RATE: f64 = 0.01;
const MAX_RATE: f64 = 100_000.0;

/// The run's flags, each checked on its own.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Flags {
    pub(super) time_scale: f64,
    pub(super) concurrency: Option<u32>,
    pub(super) rate: Option<f64>,
    pub(super) cap: Option<Money>,
}

/// What the run goes with, and the notes that say where a value came from when it matters.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Settled {
    pub(super) concurrency: u32,
    pub(super) rate: f64,
    pub(super) cap: Option<Money>,
    pub(super) notes: Vec<String>,
}

fn usage(message: impl std::fmt::Display, hint: &str) -> CommandFailure {
    CommandFailure::new(Exit::Usage, message).hint(hint)
}

impl Flags {
    pub(super) fn check(args: &RunArgs) -> Result<Flags, CommandFailure> {
        let time_scale = args
            .time_scale
            .unwrap_or(if args.simulate { SIMULATE_TIME_SCALE } else { 1.0 });
        if !(time_scale.is_finite() && (MIN_TIME_SCALE..=MAX_TIME_SCALE).contains(&time_scale)) {
            return Err(usage(
                format!("--time-scale must be between {MIN_TIME_SCALE} and {MAX_TIME_SCALE}"),
                "for example --time-scale 100 (generation 100 times faster than real time)",
            ));
        }
        if args.concurrency == Some(0) || args.max_attempts == 0 {
            return Err(usage("--concurrency and --max-attempts must be at least 1", ""));
        }
        if let Some(rate) = args.rate
            && !(rate.is_finite() && (MIN_RATE..=MAX_RATE).contains(&rate))
        {
            return Err(usage(
                format!("--rate must be between {MIN_RATE} and {MAX_RATE} requests per second"),
                "for example --rate 2",
            ));
        }
        let cap = match args.max_spend {
            None => None,
            Some(usd) => Some(Money::from_usd_f64(usd).filter(|m| *m > Money::ZERO).ok_or_else(|| {
                usage(
                    format!(
                        "--max-spend must be a number of US dollars above 0 and at most {}",
                        Money::MAX_INPUT
                    ),
                    "for example --max-spend 25",
                )
            })?),
        };
        Ok(Flags {
            time_scale,
            concurrency: args.concurrency,
            rate: args.rate,
            cap,
        })
    }

    /// These flags with the folder's recorded settings (`recorded_cap` in µ¢) and the manifest's
    /// limits.
    pub(super) fn settle(&self, recorded: &RecordedSettings, recorded_cap: Option<Money>, limits: &Limits) -> Settled {
        let mut notes = Vec::new();
        let concurrency = keep_or_replace(
            "--concurrency",
            self.concurrency,
            recorded.concurrency,
            limits.concurrency.map(|c| c.get()),
            &mut notes,
        )
        .unwrap_or(DEFAULT_CONCURRENCY);
        let rate = keep_or_replace("--rate", self.rate, recorded.rate, limits.rate_per_second, &mut notes)
            .unwrap_or(DEFAULT_RATE);
        let cap = keep_or_replace("--max-spend", self.cap, recorded_cap, limits.max_spend, &mut notes);
        Settled {
            concurrency,
            rate,
            cap,
            notes,
        }
    }
}

/// A flag given again replaces the recorded value (and a note says so); otherwise the recorded one
/// is kept; a folder without one takes the manifest's `limits:`.
fn keep_or_replace<T: PartialEq + std::fmt::Display + Copy>(
    flag: &str,
    given: Option<T>,
    recorded: Option<T>,
    manifest: Option<T>,
    notes: &mut Vec<String>,
) -> Option<T> {
    match (given, recorded) {
        (Some(g), Some(r)) if g != r => {
            notes.push(format!("note: {flag} {g} replaces the {r} this folder's run recorded"));
            Some(g)
        }
        (Some(g), _) => Some(g),
        (None, Some(r)) => {
            if let Some(m) = manifest.filter(|m| *m != r) {
                notes.push(format!(
                    "note: keeping this folder's recorded {flag} {r} (the manifest's limits say {m}); give {flag} to change it"
                ));
            }
            Some(r)
        }
        (None, None) => manifest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn flags(extra: &[&str]) -> Result<Flags, CommandFailure> {
        let mut argv = vec!["kling-batch", "run", "m.yaml", "--out", "o"];
        argv.extend(extra);
        let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
        let crate::cli::Command::Run(args) = cli.command else {
            unreachable!()
        };
        Flags::check(&args)
    }

    #[test]
    fn bad_values_are_refused_with_their_flag() {
        for (flag, value) in [
            ("--rate", "1e-300"),
            ("--rate", "NaN"),
            ("--time-scale", "1e308"),
            ("--max-spend", "0"),
            ("--concurrency", "0"),
        ] {
            let failure = flags(&[flag, value]).unwrap_err();
            assert_eq!(failure.exit, Exit::Usage);
            assert!(failure.message.contains(flag), "{flag} {value}: {}", failure.message);
        }
        assert_eq!(flags(&["--max-spend", "1e10"]).unwrap().cap, Money::from_usd_f64(1e10));
    }

    #[test]
    fn a_flag_replaces_the_recorded_value_a_recorded_one_beats_the_manifest() {
        let recorded = RecordedSettings {
            rate: Some(1.0),
            concurrency: Some(3),
            ..RecordedSettings::default()
        };
        let limits = Limits {
            rate_per_second: Some(5.0),
            max_spend: Money::from_usd_f64(50.0),
            ..Limits::default()
        };
        let four = Money::from_usd_f64(4.0);
        let kept = flags(&[]).unwrap().settle(&recorded, four, &limits);
        assert_eq!((kept.rate, kept.concurrency, kept.cap), (1.0, 3, four));
        assert!(
            kept.notes
                .iter()
                .any(|n| n.contains("keeping this folder's recorded --rate 1"))
        );
        let replaced = flags(&["--max-spend", "10", "--rate", "2"])
            .unwrap()
            .settle(&recorded, four, &limits);
        assert_eq!((replaced.rate, replaced.cap), (2.0, Money::from_usd_f64(10.0)));
        assert_eq!(replaced.notes.iter().filter(|n| n.contains("replaces")).count(), 2);
        let fresh = flags(&[]).unwrap().settle(&RecordedSettings::default(), None, &limits);
        assert_eq!(
            (fresh.rate, fresh.concurrency, fresh.cap),
            (5.0, DEFAULT_CONCURRENCY, Money::from_usd_f64(50.0))
        );
        assert!(fresh.notes.is_empty());
    }
}
