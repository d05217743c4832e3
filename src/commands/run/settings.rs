//! Raw flags ▶ validated settings, before anything starts (ripgrep's low-level ▶ high-level
//! args). Two pure steps: `Flags::check` refuses bad values with the flag named; `Flags::settle`
//! puts a flag given, the folder's recorded value and the manifest's `limits:` together (a flag
//! replaces a recorded value and says so; a recorded one is kept; the manifest fills the rest).

use crate::cli::{RunArgs, SpendFlag};
use crate::error::{CommandFailure, Exit};
use crate::journal::RecordedSettings;
use crate::manifest::Limits;
use crate::util::money::Money;

const DEFAULT_CONCURRENCY: u32 = 4;
const DEFAULT_RATE: f64 = 2.0;
pub(super) const DEFAULT_MAX_ATTEMPTS: u32 = 3;
pub(super) const SIMULATE_TIME_SCALE: f64 = 100.0;
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
    pub(super) max_attempts: Option<u32>,
    pub(super) cap: Option<CapFlag>,
}

/// `--max-spend` checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum CapFlag {
    Usd(Money),
    Lifted,
}

/// The spend cap a run goes with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cap {
    /// From `--max-spend`, the manifest's limits, or recorded from such a run.
    Given(Money),
    /// `--max-spend none`.
    Lifted,
    /// The estimate the run prints at its start (at the quoted prices), made when they are known.
    Default,
}

impl Cap {
    /// The amount, when it is known before prices are quoted.
    pub(super) fn amount(self) -> Option<Money> {
        match self {
            Cap::Given(m) => Some(m),
            Cap::Lifted | Cap::Default => None,
        }
    }

    /// What the journal records as its source.
    pub(super) fn source(self) -> &'static str {
        match self {
            Cap::Given(_) => "given",
            Cap::Lifted => "none",
            Cap::Default => "default",
        }
    }
}

/// What was asked of the service: the simulator, or a RunAPI address.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ServiceAsked {
    pub(super) simulate: bool,
    pub(super) api_base: Option<String>,
    /// `--time-scale` as given.
    pub(super) time_scale: Option<f64>,
}

/// The service a run talks to.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Service {
    /// The built-in simulator, started for this run.
    pub(super) simulate: bool,
    /// `--api-base`, else what the folder's run used.
    pub(super) api_base: Option<String>,
    /// The simulator's speed (time ×N), or the hint of a service's.
    pub(super) time_scale: f64,
}

impl ServiceAsked {
    /// The service, from what was asked and what the folder's run recorded: a folder that was run
    /// on the simulator resumes on it (unless an address is given), at the speed it recorded.
    pub(super) fn settle(&self, flags: &Flags, recorded: &RecordedSettings) -> (Service, Option<String>) {
        let resumed_simulated = !self.simulate && self.api_base.is_none() && recorded.simulate;
        let simulate = self.simulate || resumed_simulated;
        let note = resumed_simulated.then(|| {
            "note: this folder's run used the simulator; resuming on it (give --api-base to change)".to_string()
        });
        let api_base = match &self.api_base {
            Some(given) => Some(given.clone()),
            None if !simulate => recorded.api_base.clone(),
            None => None,
        };
        let time_scale = match (self.time_scale, recorded.time_scale) {
            (Some(_), _) => flags.time_scale,
            (None, Some(recorded)) if simulate => recorded,
            (None, _) if simulate => SIMULATE_TIME_SCALE,
            _ => flags.time_scale,
        };
        (
            Service {
                simulate,
                api_base,
                time_scale,
            },
            note,
        )
    }
}

/// What the run goes with, and the notes that say where a value came from when it matters.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Settled {
    pub(super) service: Service,
    pub(super) concurrency: u32,
    pub(super) rate: f64,
    pub(super) max_attempts: u32,
    pub(super) cap: Cap,
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
        if args.concurrency == Some(0) || args.max_attempts == Some(0) {
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
            Some(SpendFlag::Unlimited) => Some(CapFlag::Lifted),
            Some(SpendFlag::Usd(usd)) => Some(CapFlag::Usd(
                Money::from_usd_f64(usd).filter(|m| *m > Money::ZERO).ok_or_else(|| {
                    usage(
                        format!(
                            "--max-spend must be a number of US dollars above 0 and at most {}, or none",
                            Money::MAX_INPUT
                        ),
                        "for example --max-spend 25",
                    )
                })?,
            )),
        };
        Ok(Flags {
            time_scale,
            concurrency: args.concurrency,
            rate: args.rate,
            max_attempts: args.max_attempts,
            cap,
        })
    }

    /// These flags with the folder's recorded settings (`recorded_cap` in µ¢) and the manifest's
    /// limits.
    pub(super) fn settle(
        &self,
        service: Service,
        recorded: &RecordedSettings,
        recorded_cap: Option<Money>,
        limits: &Limits,
    ) -> Settled {
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
        let max_attempts = keep_or_replace(
            "--max-attempts",
            self.max_attempts,
            recorded.max_attempts,
            None,
            &mut notes,
        )
        .unwrap_or(DEFAULT_MAX_ATTEMPTS);
        let cap = self.cap_with(recorded, recorded_cap, limits, &mut notes);
        Settled {
            service,
            concurrency,
            rate,
            max_attempts,
            cap,
            notes,
        }
    }
}

impl Flags {
    /// The cap: a flag replaces the recorded one; a recorded default is made again from this
    /// run's estimate; a folder without one takes the manifest's, else the default.
    fn cap_with(
        &self,
        recorded: &RecordedSettings,
        recorded_cap: Option<Money>,
        limits: &Limits,
        notes: &mut Vec<String>,
    ) -> Cap {
        let recorded_given = match recorded.cap_source.as_deref() {
            Some("given") | None => recorded_cap,
            _ => None,
        };
        match self.cap {
            Some(CapFlag::Usd(m)) => {
                if let Some(r) = recorded_given.filter(|r| *r != m) {
                    notes.push(format!(
                        "note: --max-spend {m} replaces the {r} this folder's run recorded"
                    ));
                }
                Cap::Given(m)
            }
            Some(CapFlag::Lifted) => Cap::Lifted,
            None => match (recorded.cap_source.as_deref(), recorded_given) {
                (Some("none"), _) => Cap::Lifted,
                (_, Some(r)) => {
                    if let Some(m) = limits.max_spend.filter(|m| *m != r) {
                        notes.push(format!(
                            "note: keeping this folder's recorded --max-spend {r} (the manifest's limits say {m}); give --max-spend to change it"
                        ));
                    }
                    Cap::Given(r)
                }
                _ => limits.max_spend.map_or(Cap::Default, Cap::Given),
            },
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

    fn service() -> Service {
        Service {
            simulate: false,
            api_base: None,
            time_scale: 1.0,
        }
    }

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
        assert_eq!(
            flags(&["--max-spend", "1e10"]).unwrap().cap,
            Money::from_usd_f64(1e10).map(CapFlag::Usd)
        );
        assert_eq!(flags(&["--max-spend", "none"]).unwrap().cap, Some(CapFlag::Lifted));
    }

    #[test]
    fn a_flag_replaces_the_recorded_value_a_recorded_one_beats_the_manifest() {
        let recorded = RecordedSettings {
            rate: Some(1.0),
            concurrency: Some(3),
            cap_source: Some("given".into()),
            ..RecordedSettings::default()
        };
        let limits = Limits {
            rate_per_second: Some(5.0),
            max_spend: Money::from_usd_f64(50.0),
            ..Limits::default()
        };
        let four = Money::from_usd_f64(4.0);
        let kept = flags(&[]).unwrap().settle(service(), &recorded, four, &limits);
        assert_eq!(
            (kept.rate, kept.concurrency, kept.cap),
            (1.0, 3, Cap::Given(four.unwrap()))
        );
        assert!(
            kept.notes
                .iter()
                .any(|n| n.contains("keeping this folder's recorded --rate 1"))
        );
        let replaced =
            flags(&["--max-spend", "10", "--rate", "2"])
                .unwrap()
                .settle(service(), &recorded, four, &limits);
        assert_eq!(
            (replaced.rate, replaced.cap),
            (2.0, Cap::Given(Money::from_usd_f64(10.0).unwrap()))
        );
        assert_eq!(replaced.notes.iter().filter(|n| n.contains("replaces")).count(), 2);
        let fresh = flags(&[])
            .unwrap()
            .settle(service(), &RecordedSettings::default(), None, &limits);
        assert_eq!(
            (fresh.rate, fresh.concurrency, fresh.cap),
            (5.0, DEFAULT_CONCURRENCY, Cap::Given(Money::from_usd_f64(50.0).unwrap()))
        );
        assert!(fresh.notes.is_empty());
        // No cap anywhere: the estimate; a recorded default is made again; none stays lifted.
        let bare = Limits::default();
        assert_eq!(
            flags(&[])
                .unwrap()
                .settle(service(), &RecordedSettings::default(), None, &bare)
                .cap,
            Cap::Default
        );
        let default = RecordedSettings {
            cap_source: Some("default".into()),
            ..RecordedSettings::default()
        };
        assert_eq!(
            flags(&[]).unwrap().settle(service(), &default, four, &bare).cap,
            Cap::Default
        );
        let lifted = RecordedSettings {
            cap_source: Some("none".into()),
            ..RecordedSettings::default()
        };
        assert_eq!(
            flags(&[]).unwrap().settle(service(), &lifted, None, &limits).cap,
            Cap::Lifted
        );
    }
}
