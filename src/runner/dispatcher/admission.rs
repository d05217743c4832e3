//! What starts now: due timers (resends, polls, downloads), submits whose uploads are done, and
//! admission from the queue under the concurrency, the rate and the spend cap.

use super::*;

impl Dispatcher {
    /// The operations to start now.
    pub fn ready_ops(&mut self, now: Instant) -> Vec<Op> {
        let mut ops = Vec::new();
        if self.abandon {
            return ops;
        }
        self.shared_ops(now, &mut ops);
        if self.suspect() {
            return ops;
        }
        while let Some(Reverse((at, seq, job, kind))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.jobs[job].busy || self.stale(seq, job, kind) {
                continue;
            }
            match (kind, &self.jobs[job].state) {
                (Timer::Submit, JobState::Submitting { key }) => {
                    // A resend: the same key and exactly the bytes first sent (contract §17: a
                    // replay answers with the task the first send made, whether or not its
                    // uploads have expired since). A first send held back by a 429 is still a
                    // first send: it goes only while its uploads live.
                    let key = key.clone();
                    self.jobs[job].busy = true;
                    let body = self.jobs[job].facts.body().map(str::to_string);
                    let send_until = (!self.jobs[job].outcome_unknown)
                        .then(|| self.send_until(job))
                        .flatten();
                    ops.push(Op::Submit {
                        job,
                        key,
                        intent: None,
                        body,
                        send_until,
                    });
                }
                (Timer::Prepare, JobState::Preparing { .. }) => {
                    self.jobs[job].busy = true;
                    let request = self.step_request(job);
                    ops.push(Op::Prepare { job, request });
                }
                (Timer::Admit, JobState::Queued) => self.enqueue(job, true),
                (Timer::Poll, JobState::Generating { task_id }) => {
                    let task_id = task_id.clone();
                    let overdue = self.jobs[job]
                        .submitted
                        .is_some_and(|s| now.duration_since(s) > self.settings.task_deadline);
                    if overdue {
                        self.time_out(job);
                        continue;
                    }
                    self.jobs[job].busy = true;
                    ops.push(Op::Poll { job, task_id });
                }
                (Timer::Poll, JobState::Downloading { task_id, .. }) => {
                    let task_id = task_id.clone();
                    if self.download_overdue(job, now) {
                        self.leave_for_rerun(job, "its video could not be fetched before the deadline".into());
                        continue;
                    }
                    self.jobs[job].busy = true;
                    ops.push(Op::Poll { job, task_id });
                }
                (Timer::Download, JobState::Downloading { .. }) => self.ready_downloads.push_back(job),
                _ => {}
            }
        }
        while self.downloads_running < self.settings.downloads_at_once.max(1) {
            let Some(job) = self.ready_downloads.pop_front() else {
                break;
            };
            let JobState::Downloading { url, .. } = &self.jobs[job].state else {
                continue;
            };
            let Some(url) = url.clone() else {
                self.set_poll(job, now);
                continue;
            };
            self.jobs[job].busy = true;
            self.downloads_running += 1;
            ops.push(Op::Download { job, url });
        }
        while let Some(job) = self.ready_submits.pop_front() {
            let (Some(intent), JobState::Submitting { key }) = (self.jobs[job].intent.take(), &self.jobs[job].state)
            else {
                continue;
            };
            let key = key.clone();
            let body = self.jobs[job].facts.body().map(str::to_string);
            let send_until = self.send_until(job);
            self.jobs[job].busy = true;
            ops.push(Op::Submit {
                job,
                key,
                intent: Some(intent),
                body,
                send_until,
            });
        }
        if self.stop.is_none() {
            let limit = self.admission_limit(now);
            while self.in_flight < limit {
                let Some(&job) = self.queue.front() else { break };
                if !matches!(self.jobs[job].state, JobState::Queued) {
                    // Given up to another worker since it was queued.
                    self.queue.pop_front();
                    continue;
                }
                // A step sends its parent's task in its request, made now and journaled with
                // its intent, so a resend is byte for byte the same.
                let request = self.step_request(job);
                if self.plan.jobs[job].parent.is_some() && request.is_none() {
                    self.queue.pop_front();
                    self.enqueue(job, false);
                    continue;
                }
                let amount = self.reservation(job);
                if let Err(cap) = self.ledger.try_reserve(amount) {
                    self.stop_submitting(StopReason::CapReached {
                        needed: cap.needed,
                        left: cap.left,
                    });
                    break;
                }
                self.queue.pop_front();
                let text = request.as_deref().unwrap_or(self.plan.jobs[job].request.as_str());
                if text.contains(crate::inputs::PLACEHOLDER) {
                    // Local files first; the intent follows with the body that names them.
                    let j = &mut self.jobs[job];
                    j.retries = 0;
                    j.busy = true;
                    j.state = JobState::Preparing { reserve: amount };
                    self.in_flight += 1;
                    ops.push(Op::Prepare { job, request });
                    continue;
                }
                let id = self.job_id(job);
                let attempt = self.jobs[job].facts.attempt + 1;
                let key = idempotency_key(&self.settings.run_id, &id, attempt);
                let intent = Record::Submitting {
                    job: id,
                    attempt,
                    key: key.clone(),
                    reserve: amount.micro_cents(),
                    body: request.clone(),
                    send_until: None,
                    at: crate::util::time_format::now(),
                };
                self.record_intent(job, &intent);
                let j = &mut self.jobs[job];
                j.retries = 0;
                j.polls = 0;
                j.outcome_unknown = false;
                j.busy = true;
                j.state = JobState::Submitting { key: key.clone() };
                self.in_flight += 1;
                ops.push(Op::Submit {
                    job,
                    key,
                    intent: Some(Box::new(intent)),
                    body: request,
                    send_until: None,
                });
            }
        }
        for op in &ops {
            if matches!(op, Op::Submit { .. } | Op::Poll { .. }) {
                self.usage.note(now);
            }
        }
        self.prune_stale();
        ops
    }

    /// How many jobs this worker holds in flight: `--concurrency`, except that while the rate
    /// binds, a worker of a shared sweep holds its share of it (the sweep's rate is divided among
    /// its workers, and so is what that rate can serve). Tasks beyond what the rate can look at
    /// only wait, finished, to be seen: three workers holding 100 each at the rate one worker
    /// spends on 100 noticed completions two to three times later. Once bound, the worker stays
    /// so until its requests fall below half its share: a limit that came and went with each dip
    /// let in a burst of creates every time.
    pub(super) fn admission_limit(&mut self, now: Instant) -> usize {
        let workers = usize::try_from(self.shared.workers.max(1)).unwrap_or(usize::MAX);
        match self.pressure(now) {
            Pressure::Busy => self.shared.rate_bound = true,
            Pressure::Spare => self.shared.rate_bound = false,
            Pressure::Normal => {}
        }
        if workers > 1 && self.shared.rate_bound {
            self.settings.concurrency.div_ceil(workers).max(1)
        } else {
            self.settings.concurrency
        }
    }
}
