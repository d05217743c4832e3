//! The dispatcher's timers: when to look at each generating task (from the schedule, against the
//! request budget), re-plans when the schedule learns, and backoff.

use super::*;

impl Dispatcher {
    pub(super) fn push_timer(&mut self, at: Instant, job: usize, kind: Timer) {
        self.sequence += 1;
        self.timers.push(Reverse((at, self.sequence, job, kind)));
    }

    /// Looks at the job's task at `at` (not before a `Retry-After` it was given): this replaces
    /// any look planned earlier.
    pub(super) fn set_poll(&mut self, job: usize, at: Instant) {
        let at = self.jobs[job].not_before.map_or(at, |nb| at.max(nb));
        self.push_timer(at, job, Timer::Poll);
        self.jobs[job].poll_seq = self.sequence;
        self.jobs[job].poll_at = Some(at);
    }

    /// A look replaced by a later plan.
    pub(super) fn stale(&self, seq: u64, job: usize, kind: Timer) -> bool {
        kind == Timer::Poll && self.jobs[job].poll_seq != seq
    }

    /// Drops replaced looks from the top of the timers, so a run is not kept waiting by them.
    pub(super) fn prune_stale(&mut self) {
        while let Some(Reverse((_, seq, job, kind))) = self.timers.peek().copied()
            && self.stale(seq, job, kind)
        {
            self.timers.pop();
        }
    }

    /// When to look next at a generating task, from what the schedule knows now (never before
    /// now); `None` for a task whose create time is unknown.
    pub(super) fn next_look(&mut self, job: usize, now: Instant) -> Option<Instant> {
        let submitted = self.jobs[job].submitted?;
        let elapsed = now.saturating_duration_since(submitted).as_secs_f64();
        let seen = self.jobs[job].last_unfinished.as_secs_f64();
        let pressure = self.pressure(now);
        let at = self
            .schedule
            .next_poll(self.shape_ids[job], job, seen, elapsed, pressure);
        Some((submitted + Duration::from_secs_f64(at.clamp(0.0, 1e7))).max(now))
    }

    /// Plans the next look at a generating task.
    pub(super) fn plan_poll(&mut self, job: usize, now: Instant) {
        let at = self.next_look(job, now).unwrap_or(now);
        self.set_poll(job, at);
    }

    /// `plan_poll` for a task that has a look planned already: the timer is replaced only when
    /// the plan moved it (by more than a millisecond).
    pub(super) fn replan_poll(&mut self, job: usize, now: Instant) {
        let Some(at) = self.next_look(job, now) else {
            return;
        };
        let at = self.jobs[job].not_before.map_or(at, |nb| at.max(nb));
        let moved = self.jobs[job].poll_at.is_none_or(|old| {
            let gap = if old > at { old - at } else { at - old };
            gap > Duration::from_millis(1)
        });
        if moved {
            self.set_poll(job, at);
        }
    }

    /// Re-plans the tasks in flight of shapes whose plan changed: a look planned later than the
    /// new plan comes forward, one planned sooner waits.
    pub(super) fn replan(&mut self, shapes: &[ShapeId], now: Instant) {
        for shape in shapes {
            let jobs: Vec<usize> = self.generating[shape.index()].iter().copied().collect();
            for job in jobs {
                if !self.jobs[job].busy && matches!(self.jobs[job].state, JobState::Generating { .. }) {
                    self.replan_poll(job, now);
                }
            }
        }
    }

    /// The job's task no longer generates (finished, failed, left): the schedule forgets it.
    pub(super) fn stop_generating(&mut self, job: usize) {
        let shape = self.shape_ids[job];
        if self.generating[shape.index()].remove(&job) {
            self.schedule.left(shape, job);
        }
    }

    /// How dear a status read is now, from the requests handed out lately against `--rate`.
    pub(super) fn pressure(&self, now: Instant) -> Pressure {
        // A worker of a shared sweep has its share of the sweep's rate.
        let rate = self.settings.rate / self.shared.workers.max(1) as f64;
        let used = self.usage.per_second(now) / rate.max(0.01);
        if used < 0.5 {
            Pressure::Spare
        } else if used < 0.9 {
            Pressure::Normal
        } else {
            Pressure::Busy
        }
    }

    /// Full-jitter exponential backoff: a random wait up to min(cap, base × 2^n), the base
    /// following the service's speed as learned (or hinted).
    pub(super) fn backoff(&mut self, retries: u32) -> Duration {
        let base = 0.5 * self.schedule.speed().clamp(1e-6, 1.0).sqrt();
        let ceiling = (base * 2f64.powi(retries.min(16) as i32)).min(30.0);
        Duration::from_secs_f64(self.rng.between(ceiling / 4.0, ceiling))
    }
}
