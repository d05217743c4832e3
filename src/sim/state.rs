//! The simulator's state and its rules, synchronous and free of I/O: handlers lock it, call one
//! method, and unlock before any await. Task status is computed from the simulated clock when
//! asked, so no timer runs per task.

use super::config::{Faults, GenerationTime, RetryAfterForm, SimConfig};
use super::stats::Counters;
pub(super) use super::task::{FAILURE_REASONS, Outcome, Status, Task, TaskTiming};
use crate::kling::Endpoint;
use crate::kling::pricing::PriceTable;
use crate::kling::request::canonical_json;
use crate::util::hex::hex;
use crate::util::money::Money;
use crate::util::rng::Rng;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant, SystemTime};

/// What a status read finds.
#[derive(Debug, Clone)]
pub(super) enum Read {
    Found(Task),
    /// Completed, but shown without `videos` (a fault).
    Urlless(Task),
    /// The task exists but the read answers 404 (a fault).
    Hidden,
    Missing,
}

/// Why a create did not make a task.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum CreateRefusal {
    Conflict,
    /// The `resend_error_status` fault: an error answer to a resend whose task exists.
    ResendError(u16),
    InsufficientCredits {
        needed: Money,
        available: Money,
    },
    /// A continuation (`source_task_id`) whose source cannot be continued (contract §15).
    Continuation {
        status: u16,
        code: &'static str,
        message: String,
    },
}

#[derive(Debug, Clone)]
pub(super) struct Created {
    pub task: Task,
    pub replayed: bool,
    pub drop_connection: bool,
}

/// A token bucket over real time for all API requests.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Debug)]
pub(super) struct State {
    pub faults: Faults,
    adopt_unknown_tasks: bool,
    pub api_key: String,
    pub video_bytes: u64,
    generation: GenerationTime,
    rng: Rng,
    prices: PriceTable,
    tasks: HashMap<String, Task>,
    /// Idempotency-Key → (body hash, task id).
    keys: HashMap<String, (String, String)>,
    /// Keys whose resend has had its one error answer.
    resend_errored: std::collections::HashSet<String>,
    unsettled: BinaryHeap<Reverse<(Duration, String)>>,
    bucket: Bucket,
    retry_after_flip: bool,
    balance: Money,
    reserved: Money,
    pub counters: Counters,
    pub(super) uploads: super::upload_store::Uploads,
}

/// What the admission check decided for one request.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Admission {
    Proceed,
    ServerError(u16),
    RateLimited {
        retry_after: Duration,
        form: RetryAfterForm,
    },
}

impl State {
    pub(super) fn new(config: &SimConfig) -> State {
        State {
            faults: config.faults.clone(),
            adopt_unknown_tasks: config.adopt_unknown_tasks,
            api_key: config.api_key.clone(),
            video_bytes: config.video_bytes,
            generation: config.generation,
            rng: Rng::new(config.seed),
            prices: PriceTable::builtin(),
            tasks: HashMap::new(),
            keys: HashMap::new(),
            resend_errored: Default::default(),
            unsettled: BinaryHeap::new(),
            bucket: Bucket {
                tokens: config.faults.rate_limit_burst.max(0.0),
                last: Instant::now(),
            },
            retry_after_flip: false,
            balance: Money::from_cents(config.balance_cents),
            reserved: Money::ZERO,
            counters: Counters::default(),
            uploads: super::upload_store::Uploads::default(),
        }
    }

    pub(super) fn prices(&self) -> &PriceTable {
        &self.prices
    }

    pub(super) fn set_faults(&mut self, faults: Faults) {
        self.bucket.tokens = faults.rate_limit_burst.max(0.0);
        self.faults = faults;
    }

    pub(super) fn set_balance(&mut self, cents: u64) {
        self.balance = Money::from_cents(cents);
    }

    pub(super) fn available(&self) -> Money {
        self.balance.saturating_sub(self.reserved)
    }

    /// Faults that answer before anything happens: a 5xx, or a 429 from the token bucket.
    pub(super) fn admit(&mut self, api: bool) -> Admission {
        if self.rng.chance(self.faults.server_error_rate) {
            let status = [500, 502, 503, 504][(self.rng.next_u64() % 4) as usize];
            self.counters.server_errors += 1;
            return Admission::ServerError(status);
        }
        if !api {
            return Admission::Proceed;
        }
        let Some(rate) = self.faults.rate_limit_per_second.filter(|r| *r > 0.0) else {
            return Admission::Proceed;
        };
        let now = Instant::now();
        let burst = self.faults.rate_limit_burst.max(1.0);
        let refill = now.duration_since(self.bucket.last).as_secs_f64() * rate;
        self.bucket.tokens = (self.bucket.tokens + refill).min(burst);
        self.bucket.last = now;
        if self.bucket.tokens >= 1.0 {
            self.bucket.tokens -= 1.0;
            return Admission::Proceed;
        }
        self.counters.rate_limited += 1;
        let wait = Duration::from_secs_f64((1.0 - self.bucket.tokens) / rate);
        let form = match self.faults.retry_after {
            RetryAfterForm::Alternate => {
                self.retry_after_flip = !self.retry_after_flip;
                if self.retry_after_flip {
                    RetryAfterForm::Seconds
                } else {
                    RetryAfterForm::Date
                }
            }
            other => other,
        };
        Admission::RateLimited {
            retry_after: wait,
            form,
        }
    }

    /// Extra delay for this response, from the latency and slow-response faults.
    pub(super) fn latency(&mut self) -> Duration {
        let (low, high) = self.faults.latency_ms;
        let mut ms = if high > low {
            self.rng.between(low as f64, high as f64) as u64
        } else {
            low
        };
        if self.rng.chance(self.faults.slow_rate) {
            ms += self.faults.slow_ms;
        }
        Duration::from_millis(ms)
    }

    /// The status a failing upload answers, when the fault strikes.
    pub(super) fn upload_fault(&mut self) -> Option<axum::http::StatusCode> {
        let rate = self.faults.upload_failure_rate;
        self.rng
            .chance(rate)
            .then_some(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// A continuation's source: ours, completed, of a model the action continues (§15 codes).
    fn check_source(&mut self, endpoint: Endpoint, source: &str, now: Duration) -> Result<(), CreateRefusal> {
        let refuse =
            |status: u16, code: &'static str, message: String| CreateRefusal::Continuation { status, code, message };
        if !self.tasks.contains_key(source) && self.adopt_unknown_tasks && source.len() <= 64 {
            // A task an earlier simulator made (a resumed `run --simulate`): taken as completed,
            // of a model it continues, since this one never saw its request.
            return Ok(());
        }
        let Some(task) = self.tasks.get(source) else {
            self.counters.continuations_unusable += 1;
            return Err(refuse(
                422,
                "source_task_unusable",
                format!("No task {source} on this account"),
            ));
        };
        match task.status(now) {
            Status::Pending | Status::Processing => {
                self.counters.continuations_not_ready += 1;
                return Err(refuse(
                    409,
                    "source_task_not_ready",
                    format!("Task {source} has not completed yet"),
                ));
            }
            Status::Failed => {
                self.counters.continuations_unusable += 1;
                return Err(refuse(422, "source_task_unusable", format!("Task {source} failed")));
            }
            Status::Completed => {}
        }
        if self.rng.chance(self.faults.continuation_not_ready_rate) {
            // Completed, but not yet visible to the create path (a lagging replica).
            self.counters.continuations_not_ready += 1;
            return Err(refuse(
                409,
                "source_task_not_ready",
                format!("Task {source} has not completed yet"),
            ));
        }
        // A task adopted from an earlier simulator: its model is not known here, so it is taken
        // as one the action continues.
        let checked = !task.adopted();
        if checked
            && let Err(why) = crate::kling::continuation::can_continue(endpoint, task.endpoint, task.model.as_deref())
        {
            self.counters.continuations_unusable += 1;
            return Err(refuse(422, "continuation_not_supported", format!("{source}: {why}")));
        }
        Ok(())
    }

    /// Whether an Idempotency-Key has made a task already (its resend is a replay).
    pub(super) fn knows_key(&self, key: &str) -> bool {
        self.keys.contains_key(key)
    }

    pub(super) fn draw(&mut self, probability: f64) -> bool {
        self.rng.chance(probability)
    }

    /// A number below `n`.
    pub(super) fn pick(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n.max(1)
    }

    /// Creates a task for a validated request, or replays the one an Idempotency-Key made.
    pub(super) fn create(
        &mut self,
        endpoint: Endpoint,
        body: &Map<String, Value>,
        idempotency_key: Option<&str>,
        client_request_id: Option<&str>,
        now: Duration,
    ) -> Result<Created, CreateRefusal> {
        let body_hash = hex(&Sha256::digest(canonical_json(&Value::Object(body.clone())).as_bytes()));
        if let Some(key) = idempotency_key
            && let Some((hash, task_id)) = self.keys.get(key)
        {
            if *hash != body_hash {
                self.counters.conflicts += 1;
                return Err(CreateRefusal::Conflict);
            }
            if let Some(status) = self.faults.resend_error_status
                && (self.resend_errored.insert(key.to_string()) || self.faults.resend_error_always)
            {
                self.counters.resend_errors += 1;
                return Err(CreateRefusal::ResendError(status));
            }
            let task = self.tasks[task_id].clone();
            self.counters.replays += 1;
            return Ok(Created {
                task,
                replayed: true,
                drop_connection: false,
            });
        }
        let source = body.get("source_task_id").and_then(Value::as_str);
        if let Some(source) = source {
            self.check_source(endpoint, source, now)?;
        }
        // An extension's video is its source's and one clip more (billed for the clip it adds).
        let video_len = match source.and_then(|s| self.tasks.get(s)) {
            Some(task) if endpoint == Endpoint::ExtendVideo => task.video_len.saturating_add(self.video_bytes),
            _ => self.video_bytes,
        };
        let estimate = self.prices.estimate(endpoint, body);
        if estimate.cost > self.available() {
            self.counters.insufficient_credits += 1;
            return Err(CreateRefusal::InsufficientCredits {
                needed: estimate.cost,
                available: self.available(),
            });
        }
        let id = self.rng.uuid();
        let generation = self
            .generation
            .draw(&mut self.rng, endpoint, body, estimate.seconds, now);
        let queued = generation.mul_f64(self.rng.between(0.05, 0.15));
        let outcome = if self.rng.chance(self.faults.task_failure_rate) {
            Outcome::Fails(FAILURE_REASONS[(self.rng.next_u64() % FAILURE_REASONS.len() as u64) as usize])
        } else {
            Outcome::Completes
        };
        let task = Task {
            id: id.clone(),
            endpoint,
            model: body.get("model").and_then(Value::as_str).map(str::to_string),
            created_at: SystemTime::now(),
            created: now,
            started: now + queued,
            ready: now + generation,
            outcome,
            reserved: estimate.cost,
            charge: Money::from_micro_cents(
                (estimate.cost.micro_cents() as f64 * self.faults.bill_factor.max(0.0)).round() as u64,
            ),
            settled_at: None,
            client_request_id: client_request_id.map(str::to_string),
            body_hash: body_hash.clone(),
            polls: 0,
            noticed: None,
            reads: 0,
            completed_reads: 0,
            video_len,
            source_task_id: source.map(str::to_string),
        };
        self.reserved = self.reserved.saturating_add(task.reserved);
        if let Some(key) = idempotency_key {
            self.keys.insert(key.to_string(), (body_hash.clone(), id.clone()));
            *self
                .counters
                .creates_per_idempotency_key
                .entry(key.to_string())
                .or_default() += 1;
        }
        *self.counters.creates_per_body.entry(body_hash).or_default() += 1;
        if let Some(client) = client_request_id {
            *self
                .counters
                .creates_per_client_request_id
                .entry(client.to_string())
                .or_default() += 1;
        }
        self.counters.tasks_created += 1;
        self.unsettled.push(Reverse((task.ready, id.clone())));
        self.tasks.insert(id, task.clone());
        let drop_connection = self.rng.chance(self.faults.drop_after_create_rate);
        Ok(Created {
            task,
            replayed: false,
            drop_connection,
        })
    }

    /// Settles every task whose outcome is due: a completed task is charged, a failed one's
    /// reservation is released.
    pub(super) fn settle_due(&mut self, now: Duration) {
        while let Some(Reverse((ready, _))) = self.unsettled.peek() {
            if *ready > now {
                break;
            }
            let Some(Reverse((_, id))) = self.unsettled.pop() else {
                break;
            };
            let Some(task) = self.tasks.get_mut(&id) else { continue };
            task.settled_at = Some(SystemTime::now());
            self.reserved = self.reserved.saturating_sub(task.reserved);
            match task.outcome {
                Outcome::Completes => {
                    self.balance = self.balance.saturating_sub(task.charge);
                    self.counters.billed = self.counters.billed.saturating_add(task.charge);
                    self.counters.tasks_completed += 1;
                    *self.counters.billed_per_body.entry(task.body_hash.clone()).or_default() += 1;
                    if let Some(client) = &task.client_request_id {
                        *self
                            .counters
                            .billed_per_client_request_id
                            .entry(client.clone())
                            .or_default() += 1;
                    }
                }
                Outcome::Fails(_) => self.counters.tasks_failed += 1,
            }
        }
    }

    pub(super) fn task(&self, id: &str) -> Option<&Task> {
        self.tasks.get(id)
    }

    /// A status read at `now`: the task (adopted if unknown and the simulator adopts), with the
    /// read counted on it. The eventual-consistency faults apply here: a read they hide is
    /// `Read::Hidden` (answered 404), a completed task they show without its URL `Read::Urlless`.
    pub(super) fn read_task(&mut self, id: &str, endpoint: Endpoint, now: Duration) -> Read {
        if !self.tasks.contains_key(id) && self.adopt_unknown_tasks && id.len() <= 64 {
            let task = Task {
                id: id.to_string(),
                endpoint,
                model: None,
                created_at: SystemTime::now(),
                created: Duration::ZERO,
                started: Duration::ZERO,
                ready: Duration::ZERO,
                outcome: Outcome::Completes,
                reserved: Money::ZERO,
                charge: Money::ZERO,
                settled_at: Some(SystemTime::now()),
                client_request_id: None,
                body_hash: String::new(),
                polls: 0,
                noticed: None,
                reads: 0,
                completed_reads: 0,
                video_len: self.video_bytes,
                source_task_id: None,
            };
            self.tasks.insert(id.to_string(), task);
        }
        let Some(task) = self.tasks.get_mut(id).filter(|t| t.endpoint == endpoint) else {
            return Read::Missing;
        };
        task.reads = task.reads.saturating_add(1);
        if task.reads <= self.faults.not_found_reads {
            self.counters.not_found_reads += 1;
            return Read::Hidden;
        }
        if task.status(now) == Status::Completed {
            task.completed_reads = task.completed_reads.saturating_add(1);
            if task.completed_reads <= self.faults.completed_without_url_reads {
                self.counters.reads_without_url += 1;
                return Read::Urlless(task.clone());
            }
        }
        task.polls = task.polls.saturating_add(1);
        if task.noticed.is_none() && now >= task.ready {
            task.noticed = Some(now);
        }
        Read::Found(task.clone())
    }

    /// Every task's timing, for benchmarks: simulated seconds, in creation order.
    pub(super) fn timings(&self) -> Vec<TaskTiming> {
        let mut all: Vec<TaskTiming> = self
            .tasks
            .values()
            .map(|t| TaskTiming {
                id: t.id.clone(),
                created_unix_ms: t
                    .created_at
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                generation_seconds: t.ready.saturating_sub(t.created).as_secs_f64(),
                polls: t.polls,
                noticed_after_seconds: t.noticed.map(|n| n.saturating_sub(t.ready).as_secs_f64()),
                client_request_id: t.client_request_id.clone(),
                source_task_id: t.source_task_id.clone(),
                video_bytes: t.video_len,
            })
            .collect();
        all.sort_by_key(|t| t.created_unix_ms);
        all
    }

    pub(super) fn balance(&self) -> Money {
        self.balance
    }

    pub(super) fn reserved(&self) -> Money {
        self.reserved
    }
}

#[cfg(test)]
mod tests;
