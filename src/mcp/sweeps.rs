//! What the MCP tools do: read and plan a manifest, start a sweep as a process of its own (a
//! `kling-batch run` that outlives the server and the agent's session), stop and resume it. The
//! agent is the least trusted party here, so the human's limits are checked before anything is
//! written or sent: the runs folder (no file a manifest names leaves it), the cap of one sweep, the
//! total of every sweep's cap, and an approval bound to the plan's content — used once, for one
//! sweep, and given to the run, which refuses to start on any other plan. Above `--confirm-above`
//! the human's own word is needed (in the client, by elicitation, or in a terminal).

use super::approval::{self, Approved};
use super::book::{AWAITING_HUMAN, Book, BookError, OWN, SweepRecord};
use super::estimate::{Quotes, Shown};
use super::process::{alive, running};
use crate::client::RunApi;
use crate::client::credentials::ApiKey;
use crate::plan::{ApprovedPlan, Plan};
use crate::util::money::Money;
use crate::util::within::{OUTSIDE, Within};
use serde_json::{Value, json};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The limits the human set when starting the server; the agent cannot change them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_sweep: Money,
    pub total: Money,
    /// Sweeps whose cap is above this need the human's own confirmation, not the agent's word.
    pub confirm_above: Option<Money>,
}

/// How sweeps reach the service.
#[derive(Debug, Clone)]
pub enum Service {
    /// Each sweep runs on its own built-in simulator.
    Simulate,
    /// RunAPI (or a simulator) at this address, with the key from the environment.
    Api(Option<String>),
}

/// A refusal, as the model can act on it: a code from the list in the skill, what is wrong, and
/// what to do.
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
        json!({ "refused": true, "error": self.code, "message": self.message, "hint": self.hint })
    }
}

/// Where a manifest comes from: its text, or a file in the runs folder.
#[derive(Debug, Clone)]
pub enum Source {
    Yaml(String),
    Path(String),
}

/// Whose word a start or resume goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// The human accepted it in the client (MCP elicitation).
    Human,
    /// Only the approval token the agent passed on.
    Token,
}

/// A start checked and not yet recorded: what the human is asked to consent to.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub id: String,
    pub file: PathBuf,
    pub digest: String,
    pub jobs: usize,
    pub estimate: Money,
    pub cap: Money,
    mark: String,
}

impl Prepared {
    /// What the human's answer is bound to: this sweep, this plan, this cap, this approval.
    pub fn binding(&self) -> String {
        format!(
            "start\n{}\n{}\n{}\n{}",
            self.id,
            self.digest,
            self.cap.micro_cents(),
            self.mark
        )
    }

    /// The question the human is asked.
    pub fn question(&self) -> String {
        format!(
            "Start the kling-batch sweep {}: {} video job(s), estimated {}, never spending more than {}?",
            self.id, self.jobs, self.estimate, self.cap
        )
    }
}

pub struct Sweeps {
    pub(super) book: Book,
    pub(super) limits: Limits,
    within: Within,
    service: Service,
    /// The `kling-batch` binary sweeps run with.
    exe: PathBuf,
    secret: Vec<u8>,
    /// The API key, to keep out of every result (whatever a manifest or the service says).
    key: Option<ApiKey>,
    quoter: Option<Arc<RunApi>>,
}

fn sha_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    crate::util::hex::hex(&sha2::Sha256::digest(bytes))
}

/// How long start_sweep and resume_sweep wait for the run to start (or end) before answering.
const START_WAIT: Duration = Duration::from_secs(30);

impl Sweeps {
    pub fn new(
        book: Book,
        limits: Limits,
        service: Service,
        exe: PathBuf,
        credentials: Option<crate::client::credentials::Credentials>,
    ) -> Result<Sweeps, String> {
        let secret = book.secret().map_err(|e| e.to_string())?;
        let key = credentials.as_ref().map(|c| c.api_key.clone());
        // Quotes only: one a second at most, each answered within 10 s.
        let quoter = match credentials {
            Some(c) => Some(Arc::new(
                RunApi::new(c, Arc::new(crate::client::Pacer::new(1.0)), Duration::from_secs(10))
                    .map_err(|e| e.to_string())?,
            )),
            None => None,
        };
        Ok(Sweeps {
            within: book.within(),
            book,
            limits,
            service,
            exe,
            secret,
            key,
            quoter,
        })
    }

    pub fn runs(&self) -> &Path {
        self.book.runs()
    }

    /// The state a client echoes back with the human's answer to `binding`, for ten minutes.
    pub fn seal_question(&self, binding: &str) -> String {
        approval::seal_question(&self.secret, binding, approval::now() + 600)
    }

    pub fn is_question(&self, state: &str, binding: &str) -> bool {
        approval::is_question(&self.secret, state, binding, approval::now())
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
    /// path must lead inside the runs folder — judged before the disk is asked, so a refusal says
    /// nothing of what lies outside.
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
                let outside = || {
                    ToolError::new(
                        "outside_runs",
                        format!("{given} {OUTSIDE} this server was given ({})", self.runs().display()),
                        "put the manifest inside the runs folder, or send its text as manifest_yaml",
                    )
                };
                let inside = self.within.check(&path).map_err(|_| outside())?;
                if !inside.is_file() {
                    return Err(ToolError::new(
                        "not_found",
                        format!("no manifest file at {given} in the runs folder"),
                        "give a path inside the runs folder, or the manifest's text as manifest_yaml",
                    ));
                }
                Ok(inside)
            }
        }
    }

    /// The plan of `source`, every file it names read only inside the runs folder.
    fn load(&self, source: &Source) -> Result<(PathBuf, Plan), ToolError> {
        let file = self.manifest_file(source)?;
        let plan = self.plan_of(&file)?;
        Ok((file, plan))
    }

    fn plan_of(&self, file: &Path) -> Result<Plan, ToolError> {
        crate::commands::load::load_plan_within(file, None, Some(&self.within)).map_err(|e| {
            let outside = e.diagnostics.iter().any(|d| d.message.contains(OUTSIDE));
            let problems: Vec<String> = e.diagnostics.iter().take(5).map(ToString::to_string).collect();
            let more = e.diagnostics.len().saturating_sub(problems.len());
            let message = format!(
                "the manifest has {} problem(s): {}{}",
                e.diagnostics.len(),
                problems.join("; "),
                if more > 0 {
                    format!("; and {more} more")
                } else {
                    String::new()
                }
            );
            if outside {
                ToolError::new(
                    "outside_runs",
                    message,
                    format!(
                        "every file a manifest names must lie inside the runs folder ({}); move it there",
                        self.runs().display()
                    ),
                )
            } else {
                ToolError::new(
                    "invalid_manifest",
                    message,
                    "call validate_manifest for each problem's line, column and hint; fix them and plan again",
                )
            }
        })
    }

    /// `validate_manifest`: every problem with its line, column and hint.
    pub fn validate(&self, source: &Source) -> Result<Value, ToolError> {
        let file = self.manifest_file(source)?;
        match crate::commands::load::load_plan_within(&file, None, Some(&self.within)) {
            Ok(plan) => Ok(json!({
                "valid": true,
                "jobs": plan.jobs.len(),
                "estimate_usd": Shown::of(&plan, &Quotes::new()).total.usd(),
                "problems": [],
            })),
            Err(e) => {
                const SHOWN: usize = 20;
                let problems: Vec<Value> = e
                    .diagnostics
                    .iter()
                    .take(SHOWN)
                    .map(|d| {
                        json!({
                            "line": d.place.line,
                            "column": d.place.column,
                            "message": d.message,
                            "hints": d.hints,
                        })
                    })
                    .collect();
                Ok(json!({
                    "valid": false,
                    "problem_count": e.diagnostics.len(),
                    "problems": problems,
                    "runs_dir": self.runs().display().to_string(),
                }))
            }
        }
    }

    /// The plan of `source` (for `plan_sweep`, which asks the service's quotes before answering).
    pub fn plan_of_source(&self, source: &Source) -> Result<Plan, ToolError> {
        self.load(source).map(|(_, plan)| plan)
    }

    /// The client for the service's live quotes (none on the simulator: its prices are the table's).
    pub fn quoter(&self) -> Option<Arc<RunApi>> {
        self.quoter.clone()
    }

    /// `plan_sweep`'s answer: the jobs, the estimate by model (never below the built-in prices or
    /// the live `quotes`) with where each price came from, and an approval bound to this plan's
    /// content, the estimate and the folder.
    pub fn plan(&self, plan: &Plan, quotes: &Quotes, elicits: bool) -> Value {
        let shown = Shown::of(plan, quotes);
        let expires = approval::now() + approval::LIFETIME_SECONDS;
        let digest = plan.content_digest();
        let runs = self.runs().to_string_lossy();
        let approved = Approved {
            digest: &digest,
            estimate_micro: shown.total.micro_cents(),
            runs: &runs,
        };
        let token = approval::issue(&self.secret, &approved, expires);
        let confirm = match (elicits, self.limits.confirm_above) {
            (true, _) => "start_sweep asks the human in this client to confirm".to_string(),
            (false, Some(above)) if shown.total > above => {
                format!("above {above}: after start_sweep the human confirms in a terminal (kling-batch mcp confirm)")
            }
            _ => "show the human this estimate; start_sweep with the approval once they agree".to_string(),
        };
        json!({
            "jobs": plan.jobs.len(),
            "estimate_usd": shown.total.usd(),
            "by_model": shown.by_model(),
            "approval": token,
            "approval_expires_at": expires,
            "approval_use": "one start_sweep of this exact plan, once; a changed manifest or file needs a new plan",
            "consent": confirm,
            "limits": {
                "max_spend_per_sweep_usd": self.limits.per_sweep.usd(),
                "max_spend_total_usd": self.limits.total.usd(),
                "committed_usd": self.book.committed().usd(),
                "confirm_above_usd": self.limits.confirm_above.map(Money::usd),
            },
            "runs_dir": self.runs().display().to_string(),
        })
    }

    /// `start_sweep`, first half: the approval, the cap and the limits checked; nothing written.
    pub fn prepare_start(
        &self,
        source: &Source,
        out: Option<&str>,
        max_spend_usd: f64,
        token: &str,
    ) -> Result<Prepared, ToolError> {
        let (file, plan) = self.load(source)?;
        let digest = plan.content_digest();
        let not_approved = |e: approval::Refusal| {
            let hint = match e {
                approval::Refusal::Expired => "call plan_sweep again and ask the human to approve the plan it shows",
                _ => {
                    "call plan_sweep on this manifest as it is now, show the human its estimate, and pass the approval it returns"
                }
            };
            ToolError::new("not_approved", e.to_string(), hint)
        };
        let approved = approval::check(
            &self.secret,
            token,
            &digest,
            &self.runs().to_string_lossy(),
            approval::now(),
        )
        .map_err(not_approved)?;
        // The estimate the human was shown (live quotes included), never below the tables'.
        let estimate = Money::from_micro_cents(approved);
        if estimate < Shown::of(&plan, &Quotes::new()).total {
            return Err(not_approved(approval::Refusal::Mismatch));
        }
        let mark = approval::used_mark(token);
        if let Some(used) = self.book.approval_used(&mark) {
            return Err(used_refusal(&used));
        }
        let cap = Money::from_usd_f64(max_spend_usd)
            .filter(|m| *m > Money::ZERO)
            .ok_or_else(|| {
                ToolError::new(
                    "bad_cap",
                    "max_spend_usd must be a number of dollars above 0",
                    "for example the estimate plan_sweep showed",
                )
            })?;
        // The human approved this plan at its estimate: the sweep may not be given more.
        if cap > estimate {
            return Err(ToolError::new(
                "over_approved",
                format!("max_spend_usd {cap} is above the approved estimate of {estimate}"),
                "start it with max_spend_usd at most the estimate the human approved",
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
                &mark[..6.min(mark.len())]
            ),
        };
        Ok(Prepared {
            id,
            file,
            digest,
            jobs: plan.jobs.len(),
            estimate,
            cap,
            mark,
        })
    }

    /// `start_sweep`, second half: under the book's lock, the approval consumed and the sweep
    /// recorded, then its run started — or, above `--confirm-above` without the human's word in
    /// the client, left waiting for the human. Answers once the run has started or ended.
    pub fn commit_start(&self, prepared: &Prepared, consent: Consent) -> Result<Value, ToolError> {
        let folder = self.runs().join(&prepared.id);
        let wait_for_human = consent == Consent::Token && self.limits.confirm_above.is_some_and(|a| prepared.cap > a);
        let manifest = prepared
            .file
            .strip_prefix(self.runs())
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| prepared.file.clone());
        let started = self
            .book
            .locked(|| {
                if let Some(used) = self.book.approval_used(&prepared.mark) {
                    return Err(used_refusal(&used));
                }
                if self.book.sweep(&prepared.id).is_some() || folder.exists() {
                    return Err(ToolError::new(
                        "exists",
                        format!("a sweep or folder named {} exists", prepared.id),
                        "resume_sweep goes on with that sweep; a new sweep needs its own plan_sweep and approval",
                    ));
                }
                let committed = self.book.committed();
                if committed.saturating_add(prepared.cap) > self.limits.total {
                    return Err(ToolError::new(
                        "over_total",
                        format!(
                            "starting it would let this server's sweeps spend {} in all; the limit is {} ({} committed already)",
                            committed.saturating_add(prepared.cap),
                            self.limits.total,
                            committed
                        ),
                        "ask for less, or ask the human to raise --max-spend-total",
                    ));
                }
                let frozen = ApprovedPlan {
                    digest: prepared.digest.clone(),
                    within: self.within.clone(),
                    jobs: prepared.jobs,
                    estimate: prepared.estimate.micro_cents(),
                };
                frozen
                    .write(&self.book.plan_file(&prepared.id))
                    .map_err(|e| ToolError::new("io", format!("cannot keep the approved plan: {e}"), "check the runs folder"))?;
                let mut record = SweepRecord {
                    sweep_id: prepared.id.clone(),
                    out: prepared.id.clone(),
                    manifest: manifest.display().to_string(),
                    cap: prepared.cap.micro_cents(),
                    started_at: crate::util::time_format::now(),
                    pid: 0,
                    digest: prepared.digest.clone(),
                    approval: prepared.mark.clone(),
                    estimate: prepared.estimate.micro_cents(),
                    jobs: prepared.jobs,
                    consent: AWAITING_HUMAN.to_string(),
                    launched_at: String::new(),
                    completed_at_launch: 0,
                    simulate: matches!(self.service, Service::Simulate),
                    api_base: match &self.service {
                        Service::Api(base) => base.clone(),
                        Service::Simulate => None,
                    },
                };
                if wait_for_human {
                    self.book.record(&record).map_err(io)?;
                    return Ok((record, None));
                }
                record.consent = match consent {
                    Consent::Human => "elicitation",
                    Consent::Token => "approval",
                }
                .to_string();
                let launch = self.launch(&mut record, 0)?;
                Ok((record, Some(launch)))
            })
            .map_err(locking)??;
        let (record, launch) = started;
        let mut answer = json!({
            "sweep_id": record.sweep_id,
            "out": folder.display().to_string(),
            "max_spend_usd": prepared.cap.usd(),
            "jobs": prepared.jobs,
        });
        match launch {
            None => {
                answer["state"] = json!(AWAITING_HUMAN);
                answer["started"] = json!(false);
                answer["next"] = json!(format!(
                    "nothing runs until the human confirms it in a terminal: kling-batch mcp confirm {} --runs-dir {} (its cap {} is above --confirm-above); tell the human, then follow it with sweep_status",
                    record.sweep_id,
                    crate::util::shell::quote(&self.runs().display().to_string()),
                    prepared.cap
                ));
            }
            Some(launch) => self.describe_launch(&mut answer, &record, launch),
        }
        Ok(answer)
    }

    /// Starts the run of `record` (under the book's lock) and records its process.
    fn launch(&self, record: &mut SweepRecord, completed: usize) -> Result<Launch, ToolError> {
        let folder = self.runs().join(&record.out);
        let journal = folder.join(crate::output::folder::JOURNAL);
        let journal_len = std::fs::metadata(&journal).map_or(0, |m| m.len());
        let log_len = std::fs::metadata(self.book.log_file(&record.sweep_id)).map_or(0, |m| m.len());
        let (pid, ended) = spawn_run(
            &self.exe,
            &self.book,
            &self.runs().join(&record.manifest),
            &folder,
            record,
        )?;
        record.pid = pid;
        record.launched_at = crate::util::time_format::now();
        record.completed_at_launch = completed;
        self.book.record(record).map_err(io)?;
        Ok(Launch {
            ended,
            journal,
            journal_len,
            log_len,
        })
    }

    /// Waits (at most `START_WAIT`) for the run to start — its journal records the start — or to
    /// end, and says which.
    fn describe_launch(&self, answer: &mut Value, record: &SweepRecord, launch: Launch) {
        let deadline = Instant::now() + START_WAIT;
        loop {
            if let Ok(code) = launch.ended.try_recv() {
                let said = self.run_said(&record.sweep_id, launch.log_len);
                answer["started"] = json!(false);
                answer["state"] = json!(super::watch::ended_state(code));
                answer["exit"] = json!(code);
                answer["reason"] = json!(super::watch::exit_words(code));
                answer["run_said"] = json!(said);
                answer["next"] =
                    json!("nothing more runs: read reason and run_said; sweep_status shows where the sweep stands");
                return;
            }
            if journal_started(&launch.journal, launch.journal_len) {
                answer["started"] = json!(true);
                answer["state"] = json!("running");
                answer["next"] = json!(
                    "call sweep_status with this sweep_id and wait_s (up to 50) until its state is finished, stopped, failed or interrupted"
                );
                return;
            }
            if Instant::now() >= deadline {
                answer["started"] = json!(true);
                answer["state"] = json!("running");
                answer["next"] = json!("its process is starting; call sweep_status with wait_s to follow it");
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The `error:`, `caused by:` and `hint:` lines the run printed since `offset` of its log:
    /// the tool's own words about why a run did not start (never the service's text alone).
    pub(super) fn run_said(&self, sweep_id: &str, offset: u64) -> Vec<String> {
        let text = std::fs::read(self.book.log_file(sweep_id)).unwrap_or_default();
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(text.len());
        String::from_utf8_lossy(&text[start..])
            .lines()
            .filter(|l| l.starts_with("error:") || l.starts_with("hint:") || l.starts_with("caused by:"))
            .take(6)
            .map(|l| l.chars().take(400).collect())
            .collect()
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
        if record.awaiting_human() || !alive(record.pid, &folder) {
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
            json!({ "sweep_id": id, "stopping": true, "next": "sweep_status shows interrupted once it has saved its work; resume_sweep goes on later" }),
        )
    }

    /// `resume_sweep`, first half: only the recorded plan resumes (a manifest or file changed
    /// since is refused); nothing written.
    pub fn prepare_resume(&self, id: &str) -> Result<(SweepRecord, Value), ToolError> {
        let record = self.record(id)?;
        if record.awaiting_human() {
            return Err(awaiting(&record, self.runs()));
        }
        let folder = self.runs().join(&record.out);
        if running(&folder) || alive(record.pid, &folder) {
            return Err(ToolError::new(
                "running",
                "the sweep is running",
                "sweep_status (with wait_s) shows how far it is",
            ));
        }
        self.approved_plan_holds(&record)?;
        let status = self.status_of(&record, &folder);
        Ok((record, status))
    }

    /// `resume_sweep`, second half: starts the run again within its recorded cap, and answers once
    /// it has started or ended (a resume that can do nothing says why).
    pub fn commit_resume(&self, record: &SweepRecord, completed: usize, consent: Consent) -> Result<Value, ToolError> {
        let mut record = record.clone();
        let launch = self
            .book
            .locked(|| {
                let folder = self.runs().join(&record.out);
                if running(&folder) || alive(record.pid, &folder) {
                    return Err(ToolError::new(
                        "running",
                        "the sweep is running",
                        "sweep_status shows how far it is",
                    ));
                }
                if consent == Consent::Human {
                    record.consent = "elicitation".into();
                }
                self.launch(&mut record, completed)
            })
            .map_err(locking)??;
        let mut answer = json!({
            "sweep_id": record.sweep_id,
            "max_spend_usd": Money::from_micro_cents(record.cap).usd(),
        });
        self.describe_launch(&mut answer, &record, launch);
        answer["resumed"] = answer["started"].clone();
        Ok(answer)
    }

    /// Whether the manifest and every file it names are still what was approved for `record`
    /// (the run checks again as it starts).
    fn approved_plan_holds(&self, record: &SweepRecord) -> Result<(), ToolError> {
        let changed = |message: &str| {
            ToolError::new(
                "plan_changed",
                message,
                "put the manifest and its files back as they were, or plan_sweep the changed manifest and start it as a new sweep with a new approval",
            )
        };
        if record.digest.is_empty() {
            return Err(changed(
                "this sweep was started by an older kling-batch whose approvals did not bind the plan's content; it cannot be started from here (kling-batch run resumes it in a terminal)",
            ));
        }
        let plan = self
            .plan_of(&self.runs().join(&record.manifest))
            .map_err(|e| ToolError {
                code: if e.code == "outside_runs" {
                    e.code
                } else {
                    "plan_changed"
                },
                ..e
            })?;
        if plan.content_digest() != record.digest {
            return Err(changed(
                "the manifest or a file it names changed since this sweep was approved; only the approved plan runs",
            ));
        }
        Ok(())
    }

    /// `kling-batch mcp confirm`: the human's own confirmation of a sweep that waits for it,
    /// given in a terminal; the run starts as `start_sweep` would have started it.
    pub fn confirm(&self, id: &str) -> Result<Value, ToolError> {
        let record = self.record(id)?;
        if !record.awaiting_human() {
            return Err(ToolError::new(
                "not_waiting",
                format!("sweep {id} is not waiting for confirmation ({})", record.consent),
                "kling-batch mcp confirm is for sweeps start_sweep left awaiting_human",
            ));
        }
        self.approved_plan_holds(&record)?;
        let mut record = record;
        let launch = self
            .book
            .locked(|| {
                // Confirmed twice at once (two terminals): the second finds it started.
                if !self.record(id)?.awaiting_human() {
                    return Err(ToolError::new(
                        "not_waiting",
                        format!("sweep {id} was confirmed and started meanwhile"),
                        "follow it with sweep_status",
                    ));
                }
                record.consent = "terminal".into();
                self.launch(&mut record, 0)
            })
            .map_err(locking)??;
        let mut answer = json!({ "sweep_id": record.sweep_id });
        self.describe_launch(&mut answer, &record, launch);
        Ok(answer)
    }
}

/// A started run's process: how it ends (from the thread that reaps it), and where to look for
/// its start.
struct Launch {
    ended: std::sync::mpsc::Receiver<i32>,
    journal: PathBuf,
    journal_len: u64,
    log_len: u64,
}

/// Whether the journal recorded a run's start past `offset`.
fn journal_started(journal: &Path, offset: u64) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(journal) else {
        return false;
    };
    if file.seek(SeekFrom::Start(offset)).is_err() {
        return false;
    }
    let mut head = vec![0u8; 64 * 1024];
    let n = file.read(&mut head).unwrap_or(0);
    head[..n].windows(13).any(|w| w == b"\"run_started\"")
}

/// Starts `kling-batch run` for a sweep as a process of its own (its own process group, so a
/// Ctrl-C to the server does not reach it), its output in the sweep's log, given the frozen
/// approved plan. A thread reaps it and notes how it ended.
fn spawn_run(
    exe: &Path,
    book: &Book,
    manifest: &Path,
    folder: &Path,
    record: &SweepRecord,
) -> Result<(u32, std::sync::mpsc::Receiver<i32>), ToolError> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(book.log_file(&record.sweep_id))
        .map_err(|e| {
            ToolError::new(
                "io",
                format!("cannot open the sweep's log: {e}"),
                "check the runs folder",
            )
        })?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("run")
        .arg(manifest)
        .arg("--out")
        .arg(folder)
        .arg("--approved-plan")
        .arg(book.plan_file(&record.sweep_id))
        .args([
            "--max-spend",
            &format!("{:.6}", Money::from_micro_cents(record.cap).usd()),
            "--yes",
            "-q",
        ]);
    // The service it was approved for, whichever server (or terminal) starts it now.
    if record.simulate {
        command.arg("--simulate");
    } else if let Some(base) = &record.api_base {
        command.args(["--api-base", base]);
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
    let (tx, rx) = std::sync::mpsc::channel();
    let exit_file = book.exit_file(&record.sweep_id, pid);
    // Reaped when it ends, while this server lives; after that, by the system.
    std::thread::spawn(move || {
        let mut child = child;
        let code = child.wait().ok().and_then(|s| s.code()).unwrap_or(super::watch::KILLED);
        let _ = std::fs::write(&exit_file, code.to_string());
        let _ = tx.send(code);
    });
    Ok((pid, rx))
}

fn io(e: BookError) -> ToolError {
    ToolError::new("io", e.to_string(), "check the runs folder")
}

fn used_refusal(used_by: &str) -> ToolError {
    ToolError::new(
        "approval_used",
        format!("this approval already started sweep {used_by}; one approval starts one sweep"),
        "follow that sweep with sweep_status; a new sweep needs a new plan_sweep and the human's approval of it",
    )
}

pub(super) fn awaiting(record: &SweepRecord, runs: &Path) -> ToolError {
    ToolError::new(
        AWAITING_HUMAN,
        format!("sweep {} waits for the human's confirmation", record.sweep_id),
        format!(
            "ask the human to run: kling-batch mcp confirm {} --runs-dir {}",
            record.sweep_id,
            crate::util::shell::quote(&runs.display().to_string())
        ),
    )
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
        io(e)
    }
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
