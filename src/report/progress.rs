//! The live view of a run on stderr. On a terminal: one indicatif bar with jobs by state, spend
//! against the cap, videos per minute and an ETA; log lines and notices print through it
//! (`print_line`), never over it. Elsewhere (cron, CI, `| tee`): a plain line when something
//! changed, at most every few seconds, and always the last one.

use crate::util::money::Money;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Counts for one look at the run.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Snapshot {
    pub total: usize,
    pub done: usize,
    pub failed: usize,
    pub queued: usize,
    pub submitting: usize,
    /// Jobs whose local files are being uploaded.
    pub uploading: usize,
    pub generating: usize,
    pub downloading: usize,
    pub spent: Money,
    pub cap: Option<Money>,
}

impl Snapshot {
    fn in_flight(&self) -> usize {
        self.uploading + self.submitting + self.generating + self.downloading
    }

    /// `progress: 5/12 done · 2 generating · 0 downloading · 1 failed · spent $3.50 of $4.00`, and
    /// while work is in flight, the pace and an ETA.
    pub(crate) fn line(&self, finished_this_run: usize, elapsed: Duration) -> String {
        let cap = self.cap.map_or(String::new(), |c| format!(" of {c}"));
        let mut line = format!(
            "progress: {}/{} done · {} generating · {} downloading · {} failed · spent {}{cap}",
            self.done,
            self.total,
            self.submitting + self.generating,
            self.downloading,
            self.failed,
            self.spent
        );
        if self.uploading > 0 {
            line.push_str(&format!(" · {} uploading", self.uploading));
        }
        line.push_str(&self.pace(finished_this_run, elapsed));
        line
    }

    fn pace(&self, finished_this_run: usize, elapsed: Duration) -> String {
        let minutes = elapsed.as_secs_f64() / 60.0;
        if self.in_flight() == 0 || finished_this_run == 0 || minutes <= 0.0 {
            return String::new();
        }
        let per_minute = finished_this_run as f64 / minutes;
        let left = (self.total - self.done - self.failed) as f64;
        let eta = Duration::from_secs_f64((left / per_minute * 60.0).min(1e7));
        format!(" · {per_minute:.1} videos/min · ETA {}", short(eta))
    }
}

fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    finished_at_start: usize,
    last_line: String,
    last_at: Option<Instant>,
    every: Duration,
}

impl Progress {
    /// A bar when stderr is a terminal (and `TERM` is not `dumb`), plain lines otherwise.
    pub(crate) fn new(total: usize, finished_at_start: usize, quiet: bool) -> Progress {
        let terminal = std::io::stderr().is_terminal() && std::env::var("TERM").map_or(true, |t| t != "dumb");
        let bar = (terminal && !quiet).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr_with_hz(4));
            let style = ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("█▉▊▋▌▍▎▏ ");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(250));
            crate::util::console::set_display(Some(bar.clone()));
            bar
        });
        Progress {
            bar,
            started: Instant::now(),
            finished_at_start,
            last_line: String::new(),
            last_at: None,
            every: if quiet { Duration::MAX } else { Duration::from_secs(5) },
        }
    }

    pub(crate) fn update(&mut self, s: &Snapshot, last: bool) {
        let finished = (s.done + s.failed).saturating_sub(self.finished_at_start);
        let line = s.line(finished, self.started.elapsed());
        match &self.bar {
            Some(bar) => {
                bar.set_position((s.done + s.failed) as u64);
                bar.set_message(
                    line.trim_start_matches("progress: ")
                        .split(" done · ")
                        .nth(1)
                        .unwrap_or("")
                        .to_string(),
                );
            }
            None => {
                let due = self.last_at.is_none_or(|t| t.elapsed() >= self.every);
                if line != self.last_line && (due || last) && self.every != Duration::MAX {
                    crate::util::console::print_line(&line);
                    self.last_line = line;
                    self.last_at = Some(Instant::now());
                }
            }
        }
    }

    /// Clears the bar before the summary is printed.
    pub(crate) fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            crate::util::console::set_display(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_show_pace_only_while_work_is_in_flight() {
        let mut s = Snapshot {
            total: 10,
            done: 4,
            generating: 2,
            queued: 4,
            spent: Money::from_cents(280),
            ..Snapshot::default()
        };
        assert_eq!(
            s.line(4, Duration::from_secs(60)),
            "progress: 4/10 done · 2 generating · 0 downloading · 0 failed · spent $2.80 · 4.0 videos/min · ETA 1m30s"
        );
        s.generating = 0;
        s.cap = Some(Money::from_cents(300));
        assert_eq!(
            s.line(4, Duration::from_secs(60)),
            "progress: 4/10 done · 0 generating · 0 downloading · 0 failed · spent $2.80 of $3.00"
        );
    }
}
