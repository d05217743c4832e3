//! What the MCP tools do, each in well under a second: read and plan a manifest, start a sweep as
//! a process of its own (a `kling-batch run` that outlives the server and the agent's session),
//! and read a sweep's state, results and log from its folder. The human's limits are checked here,
//! before anything is written or sent: the runs folder (no path from the agent leaves it), the
//! cap of one sweep, the total of every sweep's cap, and an approval bound to the plan.

use super::approval;
use super::book::{Book, BookError, OWN, SweepRecord};
use super::process::{alive, running};
use crate::client::credentials::ApiKey;
use crate::plan::Plan;
use crate::util::money::Money;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// The limits the human set when starting the server; the agent cannot change them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_sweep: Money,
    pub total: Money,
}

/// How sweeps reach the service.
#[derive(Debug, Clone)]
pub enum Service {
    /// Each sweep runs on its own built-in simulator.
    Simulate,
    /// RunAPI (or a simulator) at this address, with the key from the environment.
    Api(Option<String>),
}

/// A tool's failure, as the model can act on it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolError {
    pub code: &'static str,
    pub message: String,
    pub hint: String,
}

impl ToolError {
    pub(super) fn new(code: &'static str, message: impl Into<String>, hint: impl Into<String>) -> ToolError {
        ToolError {
            code,
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({ "error": self.code, "message": self.message, "hint": self.hint })
    }
}

/// Where a manifest comes from: its text, or a file in the runs folder.
#[derive(Debug, Clone)]
pub enum Source {
    Yaml(String),
    Path(String),
}

pub struct Sweeps {
    pub(super) book: Book,
    pub(super) limits: Limits,
    service: Service,
    /// The `kling-batch` binary sweeps run with.
    exe: PathBuf,
    secret: Vec<u8>,
    /// The API key, to keep out of every result (whatever a manifest or the service says).
    key: Option<ApiKey>,
}

fn sha_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    crate::util::hex::hex(&sha2::Sha256::digest(bytes))
}

impl Sweeps {
    pub fn new(
        book: Book,
        limits: Limits,
        service: Service,
        exe: PathBuf,
        key: Option<ApiKey>,
    ) -> Result<Sweeps, String> {
        let secret = book.secret().map_err(|e| e.to_string())?;
        Ok(Sweeps {
            book,
            limits,
            service,
            exe,
            secret,
            key,
        })
    }

    pub fn runs(&self) -> &Path {
        self.book.runs()
    }

    /// `value` with the API key masked wherever it appears, however spelt.
    pub fn scrub(&self, value: Value) -> Value {
        let Some(key) = &self.key else { return value };
        let text = value.to_string();
        if !key.found_in(&text) {
            return value;
        }
        serde_json::from_str(&key.scrub(text)).unwrap_or(Value::Null)
    }

    /// The manifest file for `source`: text is written under the server's folder (by its hash); a
    /// path must lead to a file inside the runs folder.
    fn manifest_file(&self, source: &Source) -> Result<PathBuf, ToolError> {
        match source {
            Source::Yaml(text) => {
                if text.len() > 5_000_000 {
                    return Err(ToolError::new(
                        "too_large",
                        "the manifest is larger than 5 MB",
                        "split the sweep",
                    ));
                }
                let path = self
                    .book
                    .own()
                    .join("manifests")
                    .join(format!("{}.yaml", &sha_hex(text.as_bytes())[..16]));
                if !path.exists() {
                    std::fs::write(&path, text).map_err(|e| {
                        ToolError::new("io", format!("cannot keep the manifest: {e}"), "check the runs folder")
                    })?;
                }
                Ok(path)
            }
            Source::Path(given) => {
                let path = Path::new(given);
                let path = if path.is_absolute() {
                    path.to_path_buf()
                } else {
                    self.runs().join(path)
                };
                let found = std::fs::canonicalize(&path).map_err(|_| {
                    ToolError::new(
                        "not_found",
                        format!("no manifest at {given}"),
                        "give a path inside the runs folder, or the manifest's text as manifest_yaml",
                    )
                })?;
                if !found.starts_with(self.runs())
                    || found.starts_with(self.book.own()) && !found.starts_with(self.book.own().join("manifests"))
                {
                    return Err(ToolError::new(
                        "outside_runs",
                        format!("{given} is outside the runs folder this server was given"),
                        "put the manifest inside the runs folder, or send its text as manifest_yaml",
                    ));
                }
                Ok(found)
            }
        }
    }

    fn load(&self, source: &Source) -> Result<(PathBuf, Plan), ToolError> {
        let file = self.manifest_file(source)?;
        match crate::commands::load::load_plan(&file, None) {
            Ok(plan) => Ok((file, plan)),
            Err(e) => {
                let problems: Vec<String> = e.diagnostics.iter().map(ToString::to_string).collect();
                Err(ToolError::new(
                    "invalid_manifest",
                    format!(
                        "the manifest has {} problem(s): {}",
                        problems.len(),
                        problems.join("; ")
                    ),
                    "call validate_manifest for each problem's line, column and hint; fix them and plan again",
                ))
            }
        }
    }

    /// `validate_manifest`: every problem with its line, column and hint.
    pub fn validate(&self, source: &Source) -> Result<Value, ToolError> {
        let file = self.manifest_file(source)?;
        match crate::commands::load::load_plan(&file, None) {
            Ok(plan) => Ok(json!({
                "valid": true,
                "jobs": plan.jobs.len(),
                "estimate_usd": estimate(&plan).usd(),
                "problems": [],
            })),
            Err(e) => {
                let problems: Vec<Value> = e
                    .diagnostics
                    .iter()
                    .map(|d| {
                        json!({
                            "line": d.place.line,
                            "column": d.place.column,
                            "message": d.message,
                            "hints": d.hints,
                        })
                    })
                    .collect();
                Ok(json!({ "valid": false, "problems": problems }))
            }
        }
    }

    /// `plan_sweep`: the jobs, the estimate by model, and an approval bound to both.
    pub fn plan(&self, source: &Source) -> Result<Value, ToolError> {
        let (_, plan) = self.load(source)?;
        let estimate = estimate(&plan);
        let expires = approval::now() + approval::LIFETIME_SECONDS;
        let digest = crate::store::postgres::plan_digest(&plan);
        let token = approval::issue(&self.secret, &digest, estimate.micro_cents(), expires);
        let mut by_model: BTreeMap<String, (usize, Money)> = BTreeMap::new();
        for job in &plan.jobs {
            let e = by_model.entry(job.model().unwrap_or("").to_string()).or_default();
            e.0 += 1;
            e.1 = e.1.saturating_add(job.estimate.cost);
        }
        let by_model: Vec<Value> = by_model
            .into_iter()
            .map(|(model, (jobs, cost))| json!({ "model": model, "jobs": jobs, "estimate_usd": cost.usd() }))
            .collect();
        Ok(json!({
            "jobs": plan.jobs.len(),
            "estimate_usd": estimate.usd(),
            "by_model": by_model,
            "approval": token,
            "approval_expires_at": expires,
            "limits": { "max_spend_per_sweep_usd": self.limits.per_sweep.usd(), "max_spend_total_usd": self.limits.total.usd(),
                        "committed_usd": self.book.committed().usd() },
        }))
    }

    /// `start_sweep`: checks the approval and the limits, records the sweep, starts its process
    /// and answers at once with its handle. Refused, nothing written or sent, otherwise.
    pub fn start(
        &self,
        source: &Source,
        out: Option<&str>,
        max_spend_usd: f64,
        token: &str,
    ) -> Result<Value, ToolError> {
        let (file, plan) = self.load(source)?;
        let digest = crate::store::postgres::plan_digest(&plan);
        approval::check(
            &self.secret,
            token,
            &digest,
            estimate(&plan).micro_cents(),
            approval::now(),
        )
        .map_err(|e| {
            ToolError::new(
                "not_approved",
                e.to_string(),
                "show the human plan_sweep's estimate and pass the approval it returns",
            )
        })?;
        let cap = Money::from_usd_f64(max_spend_usd)
            .filter(|m| *m > Money::ZERO)
            .ok_or_else(|| {
                ToolError::new(
                    "bad_cap",
                    "max_spend_usd must be a number of dollars above 0",
                    "for example 25",
                )
            })?;
        // The human approved this plan at its estimate: the sweep may not be given more (the run
        // then spends at most what was shown; a quote above it stops the run at the cap).
        let approved = estimate(&plan);
        if cap > approved {
            return Err(ToolError::new(
                "over_approved",
                format!("max_spend_usd {cap} is above the approved estimate of {approved}"),
                "start it with max_spend_usd at most the estimate the human approved, or plan again and ask them to approve more",
            ));
        }
        if cap > self.limits.per_sweep {
            return Err(ToolError::new(
                "over_limit",
                format!(
                    "max_spend_usd {cap} is above this server's limit of {} per sweep",
                    self.limits.per_sweep
                ),
                "ask for less, or ask the human to restart the server with a higher --max-spend-per-sweep",
            ));
        }
        let id = match out {
            Some(name) => folder_name(name)?,
            None => format!(
                "{}-{}",
                crate::util::slug::slug(plan.name.as_deref().unwrap_or("sweep"), 40),
                &sha_hex(format!("{digest}{}", approval::now()).as_bytes())[..6]
            ),
        };
        let folder = self.runs().join(&id);
        let manifest = file
            .strip_prefix(self.runs())
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| file.clone());
        let started = self
            .book
            .locked(|| {
                if self.book.sweep(&id).is_some() || folder.exists() {
                    return Err(ToolError::new(
                        "exists",
                        format!("a sweep or folder named {id} exists"),
                        "give another out, or resume_sweep to go on with that one",
                    ));
                }
                let committed = self.book.committed();
                if committed.saturating_add(cap) > self.limits.total {
                    return Err(ToolError::new(
                        "over_total",
                        format!(
                            "starting it would let this server's sweeps spend {} in all; the limit is {} ({} committed already)",
                            committed.saturating_add(cap),
                            self.limits.total,
                            committed
                        ),
                        "ask for less, or ask the human to raise --max-spend-total",
                    ));
                }
                let pid = self.spawn(&file, &folder, cap)?;
                let record = SweepRecord {
                    sweep_id: id.clone(),
                    out: id.clone(),
                    manifest: manifest.display().to_string(),
                    cap: cap.micro_cents(),
                    started_at: crate::util::time_format::now(),
                    pid,
                };
                self.book
                    .record(&record)
                    .map_err(|e| ToolError::new("io", e.to_string(), "check the runs folder"))?;
                Ok(record)
            })
            .map_err(locking)??;
        Ok(json!({
            "sweep_id": started.sweep_id,
            "out": folder.display().to_string(),
            "max_spend_usd": cap.usd(),
            "jobs": plan.jobs.len(),
            "next": "call sweep_status with this sweep_id until its state is finished",
        }))
    }

    /// Starts `kling-batch run` for a sweep as a process of its own (its own process group, so a
    /// Ctrl-C to the server does not reach it), its output in the sweep's log.
    fn spawn(&self, manifest: &Path, folder: &Path, cap: Money) -> Result<u32, ToolError> {
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.book.own().join("logs").join(format!("{name}.log")))
            .map_err(|e| {
                ToolError::new(
                    "io",
                    format!("cannot open the sweep's log: {e}"),
                    "check the runs folder",
                )
            })?;
        let mut command = std::process::Command::new(&self.exe);
        command.arg("run").arg(manifest).arg("--out").arg(folder).args([
            "--max-spend",
            &format!("{:.6}", cap.usd()),
            "--yes",
            "-q",
        ]);
        match &self.service {
            Service::Simulate => {
                command.arg("--simulate");
            }
            Service::Api(Some(base)) => {
                command.args(["--api-base", base]);
            }
            Service::Api(None) => {}
        }
        use std::os::unix::process::CommandExt;
        let child = command
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().map_err(|e| ToolError::new("io", e.to_string(), ""))?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| {
                ToolError::new(
                    "io",
                    format!("cannot start the sweep: {e}"),
                    "check the kling-batch binary",
                )
            })?;
        let pid = child.id();
        // Reaped when it ends, while this server lives; after that, by the system.
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
        Ok(pid)
    }

    pub(super) fn record(&self, id: &str) -> Result<SweepRecord, ToolError> {
        self.book.sweep(id).ok_or_else(|| {
            ToolError::new(
                "unknown_sweep",
                format!("no sweep {id} under this server's runs folder"),
                "list_sweeps shows them",
            )
        })
    }

    /// `stop_sweep`: what Ctrl-C does — in-flight work finishes and is saved; a resume goes on.
    pub fn stop(&self, id: &str) -> Result<Value, ToolError> {
        let record = self.record(id)?;
        let folder = self.runs().join(&record.out);
        if !alive(record.pid, &folder) {
            return Ok(json!({ "sweep_id": id, "stopping": false, "message": "the sweep is not running" }));
        }
        let sent = std::process::Command::new("kill")
            .args(["-INT", &record.pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !sent {
            return Err(ToolError::new(
                "stop_failed",
                "the sweep's process could not be signalled",
                "it may belong to another server's machine",
            ));
        }
        Ok(
            json!({ "sweep_id": id, "stopping": true, "next": "sweep_status shows interrupted once it has saved its work" }),
        )
    }

    /// `resume_sweep`: starts an interrupted sweep again, within its recorded cap.
    pub fn resume(&self, id: &str) -> Result<Value, ToolError> {
        let record = self.record(id)?;
        let folder = self.runs().join(&record.out);
        let manifest = self.runs().join(&record.manifest);
        let resumed = self
            .book
            .locked(|| {
                if running(&folder) || alive(record.pid, &folder) {
                    return Err(ToolError::new(
                        "running",
                        "the sweep is running",
                        "sweep_status shows how far it is",
                    ));
                }
                let pid = self.spawn(&manifest, &folder, Money::from_micro_cents(record.cap))?;
                let again = SweepRecord { pid, ..record.clone() };
                self.book
                    .record(&again)
                    .map_err(|e| ToolError::new("io", e.to_string(), "check the runs folder"))?;
                Ok(again)
            })
            .map_err(locking)??;
        Ok(
            json!({ "sweep_id": resumed.sweep_id, "resumed": true, "max_spend_usd": Money::from_micro_cents(resumed.cap).usd() }),
        )
    }
}

/// The book's lock could not be taken: busy (another server has it), or the folder's fault.
fn locking(e: BookError) -> ToolError {
    if e.is_busy() {
        ToolError::new(
            "busy",
            e.to_string(),
            "try again; if it stays busy, another kling-batch mcp server on this runs folder is stopped or paused (resume or end it)",
        )
    } else {
        ToolError::new("io", e.to_string(), "check the runs folder")
    }
}

/// What a plan is estimated to cost.
fn estimate(plan: &Plan) -> Money {
    plan.jobs.iter().map(|j| j.estimate.cost).sum()
}

/// An `out` the agent gave: one plain folder name inside the runs folder.
fn folder_name(name: &str) -> Result<String, ToolError> {
    let path = Path::new(name);
    let plain = path.components().count() == 1
        && matches!(path.components().next(), Some(Component::Normal(_)))
        && !name.starts_with('.')
        && name != OWN
        && name.len() <= 100
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if plain {
        Ok(name.to_string())
    } else {
        Err(ToolError::new(
            "bad_out",
            format!("out `{name}` is not a plain folder name"),
            "give a name of letters, digits, - _ . (it is made inside the runs folder), or leave it out",
        ))
    }
}
