//! What the MCP tools read of a sweep, from its folder and its process: where it stands (the same
//! facts `status` prints), its results paged, and every sweep the server started.

use super::book::SweepRecord;
use super::process::{alive, running};
use super::sweeps::{Sweeps, ToolError};
use crate::util::money::Money;
use serde_json::{Value, json};
use std::path::Path;

impl Sweeps {
    /// `sweep_status`: the same facts `status` prints, and whether its process runs.
    pub fn status(&self, id: &str) -> Result<Value, ToolError> {
        let record = self.record(id)?;
        let folder = self.runs().join(&record.out);
        Ok(self.status_of(&record, &folder))
    }

    fn status_of(&self, record: &SweepRecord, folder: &Path) -> Value {
        // Its process runs (holding the folder, or still starting up before it takes it).
        let running = running(folder) || alive(record.pid, folder);
        let journal = folder.join(crate::output::folder::JOURNAL);
        let history = crate::journal::read_replayed(&journal)
            .map(|(h, _)| h)
            .unwrap_or_default();
        let manifest = self.runs().join(&record.manifest);
        let mut plan = crate::commands::load::load_plan(&manifest, None).ok();
        if let Some(p) = plan.as_mut() {
            let _ = crate::review::verdicts::choose(p, Some(folder), &history);
        }
        let file_ok = |id: &str| {
            use crate::output::videos::{LocalVideos, VideoStore};
            history
                .jobs
                .get(id)
                .and_then(|h| h.video.as_ref())
                .is_some_and(|v| LocalVideos::new(folder).present(v))
        };
        let status = crate::report::RunStatus::of_journal(&history, plan.as_ref(), &file_ok);
        let summary: Option<Value> = std::fs::read(folder.join("summary.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let exit = summary.as_ref().and_then(|s| s["exit_code"].as_u64());
        // A run that ends without its summary was stopped before it finished (resumable), unless
        // it refused to start (its log ends with the error).
        let refused = || self.log_tail(&record.out).lines().any(|l| l.starts_with("error:"));
        let state = match (running, exit) {
            (true, _) => "running",
            (false, Some(0)) => "finished",
            (false, Some(7)) => "failed",
            (false, Some(3 | 8)) => "stopped",
            (false, Some(5 | 130)) => "interrupted",
            (false, Some(_)) => "failed",
            (false, None) if journal.exists() || !refused() => "interrupted",
            (false, None) => "failed",
        };
        let count = |s: &str| status.states.get(s).copied().unwrap_or(0);
        let completed = count("completed");
        let failed = count("failed") + count("skipped");
        let in_flight = count("submitting") + count("generating") + count("downloading") + count("timed_out");
        let eta = (running && completed > 0).then(|| {
            let started =
                crate::util::time_format::parse_rfc3339(&record.started_at).unwrap_or(std::time::SystemTime::now());
            let elapsed = started.elapsed().map_or(0.0, |d| d.as_secs_f64());
            let left = status.jobs.saturating_sub(completed + failed);
            (elapsed / completed as f64 * left as f64).round()
        });
        let why = (!running && state == "failed" && exit.is_none()).then(|| self.log_tail(&record.out));
        json!({
            "sweep_id": record.sweep_id,
            "state": state,
            "jobs": status.jobs,
            "completed": completed,
            "failed": failed,
            "in_flight": in_flight,
            "spent_usd": status.spent_usd,
            "reserved_usd": status.reserved_usd,
            "cap_usd": status.cap_usd.unwrap_or(Money::from_micro_cents(record.cap).usd()),
            "eta_s": eta,
            "next": status.next,
            "states": status.states,
            "exit_code": exit,
            "log": why,
            "out": folder.display().to_string(),
        })
    }

    fn log_tail(&self, name: &str) -> String {
        let text =
            std::fs::read_to_string(self.book.own().join("logs").join(format!("{name}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }

    /// `sweep_results`: results.csv's rows, paged (and filtered by status).
    pub fn results(&self, id: &str, status: Option<&str>, limit: usize, offset: usize) -> Result<Value, ToolError> {
        let record = self.record(id)?;
        let folder = self.runs().join(&record.out);
        let path = folder.join(crate::output::folder::RESULTS);
        let mut reader = match csv::Reader::from_path(&path) {
            Ok(r) => r,
            Err(_) => return Ok(json!({ "sweep_id": id, "total": 0, "rows": [] })),
        };
        let headers = reader.headers().cloned().unwrap_or_default();
        let mut rows = Vec::new();
        let mut total = 0;
        for row in reader.records().flatten() {
            let cell = |name: &str| {
                headers
                    .iter()
                    .position(|h| h == name)
                    .and_then(|i| row.get(i))
                    .unwrap_or("")
                    .to_string()
            };
            if status.is_some_and(|s| cell("status") != s) {
                continue;
            }
            total += 1;
            if total <= offset || rows.len() >= limit {
                continue;
            }
            let params: serde_json::Map<String, Value> = headers
                .iter()
                .enumerate()
                .filter(|(_, h)| !crate::report::is_own_column(h))
                .map(|(i, h)| (h.to_string(), Value::String(row.get(i).unwrap_or("").to_string())))
                .collect();
            let video = cell("video_path");
            rows.push(json!({
                "job_id": cell("job_id"),
                "prompt": cell("prompt"),
                "params": params,
                "status": cell("status"),
                "video_path": if video.is_empty() { Value::Null } else { Value::String(folder.join(&video).display().to_string()) },
                "cost_usd": cell("cost_usd").parse::<f64>().ok(),
                "task_id": cell("task_id"),
                "endpoint": cell("endpoint"),
                "error": cell("error"),
            }));
        }
        Ok(json!({ "sweep_id": id, "total": total, "offset": offset, "rows": rows }))
    }

    /// `list_sweeps`: every sweep under the runs folder with its state and spend.
    pub fn list(&self) -> Value {
        let sweeps: Vec<Value> = self
            .book
            .sweeps()
            .iter()
            .map(|r| {
                let s = self.status_of(r, &self.runs().join(&r.out));
                json!({ "sweep_id": r.sweep_id, "state": s["state"], "jobs": s["jobs"], "spent_usd": s["spent_usd"], "cap_usd": s["cap_usd"], "started_at": r.started_at })
            })
            .collect();
        json!({ "sweeps": sweeps, "committed_usd": self.book.committed().usd(), "max_spend_total_usd": self.limits.total.usd() })
    }
}
