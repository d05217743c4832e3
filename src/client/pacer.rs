//! One pace for all API requests: a governor rate limiter at `--rate`. A 429 pauses everyone
//! until its `Retry-After` and halves the pace; steady success raises it back by a quarter at a
//! time (additive patience, multiplicative caution).
//!
//! Status reads have their own share of the rate: while creates (or other requests) wait for it
//! too, polls and the others take turns (`POLL_SHARE` others, then a poll). Creates first, with a
//! poll only one slot in nine, once looked cheap (a read a little later costs a little notice
//! delay, a create later costs throughput), but a worker whose rate binds then fills every slot
//! of its concurrency with tasks done and not yet seen: three workers sharing a rate noticed
//! completions six times later than one (BENCHMARKS.md, issue 29). Taking turns costs a rate-bound
//! run nothing it needs: every job takes one create and about one read.
//!
//! Requests wait their turn in line and only the one holding the baton asks the limiter.
//! governor's own `until_ready` lets every waiter sleep until the next free slot, so a thousand
//! waiting requests all wake for each slot and all but one go back to sleep: at `--concurrency
//! 1000` that herd cost more CPU than the rest of the run (BENCHMARKS.md, "before/after").

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

#[derive(Debug)]
struct PaceState {
    /// The pace to return to (`--rate`, or this worker's share of a shared sweep's).
    base: f64,
    rate: f64,
    limiter: Arc<DefaultDirectRateLimiter>,
    paused_until: Option<Instant>,
    successes: u64,
}

/// What a 429's wait is told to (a shared sweep's other workers).
pub type PauseHook = Box<dyn Fn(Duration) + Send + Sync>;

pub struct Pacer {
    clock: DefaultClock,
    state: Mutex<PaceState>,
    /// Who asks the limiter next: one request at a time holds the baton.
    line: Mutex<Line>,
    on_pause: Mutex<Option<PauseHook>>,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// What a request is, for who gives way to whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// A status read: gives way to other requests waiting for the rate.
    Poll,
    /// Anything else (creates first of all).
    Other,
}

/// A poll waiting gets the slot after this many went to others.
const POLL_SHARE: usize = 1;

/// The requests waiting for the baton, each by the channel that hands it over.
#[derive(Debug, Default)]
struct Line {
    busy: bool,
    others: VecDeque<oneshot::Sender<()>>,
    polls: VecDeque<oneshot::Sender<()>>,
    others_since_poll: usize,
}

/// The right to ask the limiter, passed on when dropped (also when the request is cancelled).
struct Baton<'a> {
    pacer: &'a Pacer,
    waiting: Option<oneshot::Receiver<()>>,
}

impl Drop for Baton<'_> {
    fn drop(&mut self) {
        let held = match self.waiting.as_mut() {
            None => true,
            // Handed over just as this request was cancelled: pass it on.
            Some(rx) => rx.try_recv().is_ok(),
        };
        if held {
            self.pacer.pass_baton();
        }
    }
}

/// Up to 20 ms of requests may go together (at most 10), so a late timer wake (tokio's timers
/// tick in milliseconds) does not lose slots at a high rate; below 100 per second, one at a time.
fn burst(rate: f64) -> NonZeroU32 {
    NonZeroU32::new((rate / 50.0).floor().clamp(1.0, 10.0) as u32).unwrap_or(NonZeroU32::MIN)
}

fn limiter(rate: f64, clock: &DefaultClock) -> Arc<DefaultDirectRateLimiter> {
    let period = Duration::from_secs_f64(1.0 / rate);
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst(rate));
    Arc::new(RateLimiter::direct_with_clock(quota, clock.clone()))
}

impl Pacer {
    /// A pacer at `rate` requests per second (clamped to a sane range).
    pub fn new(rate: f64) -> Pacer {
        let base = if rate.is_finite() {
            rate.clamp(0.01, 100_000.0)
        } else {
            1.0
        };
        let clock = DefaultClock::default();
        Pacer {
            state: Mutex::new(PaceState {
                base,
                rate: base,
                limiter: limiter(base, &clock),
                paused_until: None,
                successes: 0,
            }),
            clock,
            line: Mutex::new(Line::default()),
            on_pause: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PaceState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current pace in requests per second.
    pub fn rate(&self) -> f64 {
        self.lock().rate
    }

    /// Waits for this request's turn: in arrival order within its kind, polls and others taking
    /// turns while both wait (`POLL_SHARE` others, then a poll).
    pub async fn acquire(&self, turn: Turn) {
        let mut baton = Baton {
            pacer: self,
            waiting: None,
        };
        {
            let mut line = self.line.lock().unwrap_or_else(|e| e.into_inner());
            if line.busy {
                let (tx, rx) = oneshot::channel();
                match turn {
                    Turn::Poll => line.polls.push_back(tx),
                    Turn::Other => line.others.push_back(tx),
                }
                baton.waiting = Some(rx);
            } else {
                line.busy = true;
            }
        }
        if let Some(rx) = baton.waiting.as_mut() {
            // The sender lives in the line until it is used: an error cannot happen.
            let _ = rx.await;
            baton.waiting = None;
        }
        loop {
            let (limiter, pause) = {
                let s = self.lock();
                (Arc::clone(&s.limiter), s.paused_until)
            };
            if let Some(until) = pause
                && until > Instant::now()
            {
                tokio::time::sleep_until(until).await;
                continue;
            }
            match limiter.check() {
                Ok(()) => return,
                Err(later) => tokio::time::sleep(later.wait_time_from(self.clock.now())).await,
            }
        }
    }

    /// Hands the baton to the next request: a poll if no other request waits or `POLL_SHARE`
    /// went since the last poll, else the longest-waiting other request.
    fn pass_baton(&self) {
        let mut line = self.line.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let poll_now = !line.polls.is_empty() && (line.others.is_empty() || line.others_since_poll >= POLL_SHARE);
            let next = if poll_now {
                line.others_since_poll = 0;
                line.polls.pop_front()
            } else {
                let next = line.others.pop_front();
                line.others_since_poll += usize::from(next.is_some());
                next
            };
            match next {
                // A waiter that was cancelled meanwhile does not take it.
                Some(tx) => {
                    if tx.send(()).is_ok() {
                        return;
                    }
                }
                None => {
                    line.busy = false;
                    return;
                }
            }
        }
    }

    /// A 429: everyone waits `retry_after` (1 s if unsaid) and the pace halves.
    pub fn on_rate_limited(&self, retry_after: Option<Duration>) {
        let wait = retry_after.unwrap_or(Duration::from_secs(1));
        let mut s = self.lock();
        let until = Instant::now() + wait;
        s.paused_until = Some(s.paused_until.map_or(until, |p| p.max(until)));
        let slower = (s.rate / 2.0).max((s.base / 16.0).max(0.01));
        if slower < s.rate {
            s.rate = slower;
            s.limiter = limiter(slower, &self.clock);
        }
        s.successes = 0;
        drop(s);
        let hook = self.on_pause.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(hook) = hook.as_ref() {
            hook(wait);
        }
    }

    /// Called with every 429's wait (a shared sweep tells its other workers).
    pub fn set_pause_hook(&self, hook: PauseHook) {
        *self.on_pause.lock().unwrap_or_else(|e| e.into_inner()) = Some(hook);
    }

    /// Waits everyone until `wait` from now (a pause another worker of the sweep met), without
    /// slowing the pace.
    pub fn pause_for(&self, wait: Duration) {
        let mut s = self.lock();
        let until = Instant::now() + wait;
        s.paused_until = Some(s.paused_until.map_or(until, |p| p.max(until)));
    }

    /// Sets the pace to return to: a shared sweep's rate divided among its workers.
    pub fn set_base(&self, rate: f64) {
        let rate = if rate.is_finite() {
            rate.clamp(0.01, 100_000.0)
        } else {
            return;
        };
        let mut s = self.lock();
        if (s.base - rate).abs() < 1e-9 {
            return;
        }
        s.base = rate;
        s.rate = rate;
        s.successes = 0;
        s.limiter = limiter(rate, &self.clock);
    }

    /// A request that was not rate-limited: after enough of them the pace rises again.
    pub fn on_success(&self) {
        let mut s = self.lock();
        if s.rate >= s.base {
            return;
        }
        s.successes += 1;
        if s.successes as f64 >= (s.rate * 5.0).max(10.0) {
            s.rate = (s.rate * 1.25).min(s.base);
            s.limiter = limiter(s.rate, &self.clock);
            s.successes = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_on_429_and_recovers_slowly() {
        let pacer = Pacer::new(8.0);
        pacer.on_rate_limited(Some(Duration::ZERO));
        assert_eq!(pacer.rate(), 4.0);
        for _ in 0..9 {
            pacer.on_success();
        }
        assert_eq!(pacer.rate(), 4.0, "not yet");
        for _ in 0..11 {
            pacer.on_success();
        }
        assert_eq!(pacer.rate(), 5.0, "after max(10, 5 × rate) successes, a quarter faster");
        for _ in 0..10 {
            pacer.on_rate_limited(None);
        }
        assert_eq!(pacer.rate(), 0.5, "never below a sixteenth of the base");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_everyone() {
        let pacer = Pacer::new(1000.0);
        pacer.on_rate_limited(Some(Duration::from_secs(5)));
        let start = Instant::now();
        pacer.acquire(Turn::Other).await;
        assert!(start.elapsed() >= Duration::from_secs(5));
    }

    #[tokio::test]
    async fn waiters_go_in_arrival_order_and_never_faster_than_the_rate() {
        let pacer = Arc::new(Pacer::new(2000.0));
        let order = Arc::new(Mutex::new(Vec::new()));
        let start = std::time::Instant::now();
        let waiters: Vec<_> = (0..60)
            .map(|i| {
                let (pacer, order) = (Arc::clone(&pacer), Arc::clone(&order));
                tokio::spawn(async move {
                    pacer.acquire(Turn::Other).await;
                    order.lock().unwrap().push(i);
                })
            })
            .collect();
        for w in waiters {
            w.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order, (0..60).collect::<Vec<_>>(), "first come, first served");
        // 60 requests at 2000/s with a burst of 10 need at least 49 periods of 0.5 ms.
        assert!(
            start.elapsed() >= Duration::from_micros(49 * 500),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(burst(2000.0).get(), 10);
        assert_eq!(burst(5.0).get(), 1);
    }

    #[tokio::test]
    async fn polls_and_waiting_creates_take_turns() {
        // One slot per 20 ms, no burst: governor keeps real time, so this test does too.
        let pacer = Arc::new(Pacer::new(50.0));
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        // Two creates take the first slots; twenty creates line up, then two polls.
        let line = (0..22)
            .map(|i| (format!("c{i}"), Turn::Other))
            .chain([("p1".to_string(), Turn::Poll), ("p2".to_string(), Turn::Poll)]);
        for (name, turn) in line {
            let (pacer, order) = (Arc::clone(&pacer), Arc::clone(&order));
            waiters.push(tokio::spawn(async move {
                pacer.acquire(turn).await;
                order.lock().unwrap().push(name);
            }));
            // Each waiter takes its place in line before the next one starts.
            tokio::task::yield_now().await;
        }
        for w in waiters {
            w.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        let at = |name: &str| order.iter().position(|n| n == name).unwrap();
        // c0 and c1 hold the first two turns; then a create and a poll in turn while both wait
        // (a poll's share is half the rate, not a ninth: reads are not starved by creates).
        assert_eq!(at("p1"), 3, "{order:?}");
        assert_eq!(at("p2"), 5, "{order:?}");
        assert_eq!(order.len(), 24);
        let creates: Vec<&String> = order.iter().filter(|n| n.starts_with('c')).collect();
        let arrival: Vec<String> = (0..22).map(|i| format!("c{i}")).collect();
        assert_eq!(creates, arrival.iter().collect::<Vec<_>>(), "creates keep their order");
    }

    #[tokio::test]
    async fn a_cancelled_waiter_passes_its_turn_on() {
        let pacer = Arc::new(Pacer::new(20.0));
        pacer.acquire(Turn::Other).await;
        // Holds the line while it waits for the next slot (50 ms away), then is dropped.
        let cancelled = tokio::time::timeout(Duration::from_millis(5), pacer.acquire(Turn::Poll)).await;
        assert!(cancelled.is_err());
        // And one cancelled while waiting behind another.
        let holder = {
            let pacer = Arc::clone(&pacer);
            tokio::spawn(async move { pacer.acquire(Turn::Other).await })
        };
        tokio::task::yield_now().await;
        let behind = tokio::time::timeout(Duration::from_millis(5), pacer.acquire(Turn::Other)).await;
        assert!(behind.is_err());
        holder.await.unwrap();
        let next = tokio::time::timeout(Duration::from_secs(5), pacer.acquire(Turn::Other)).await;
        assert!(next.is_ok(), "the line did not stall");
    }
}
