//! One pace for all API requests: a governor rate limiter at `--rate`. A 429 pauses everyone
//! until its `Retry-After` and halves the pace; steady success raises it back by a quarter at a
//! time (additive patience, multiplicative caution).
//!
//! Requests wait their turn in a FIFO turnstile and only the one at its head asks the limiter.
//! governor's own `until_ready` lets every waiter sleep until the next free slot, so a thousand
//! waiting requests all wake for each slot and all but one go back to sleep: at `--concurrency
//! 1000` that herd cost more CPU than the rest of the run (BENCHMARKS.md, "before/after").

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
struct PaceState {
    rate: f64,
    limiter: Arc<DefaultDirectRateLimiter>,
    paused_until: Option<Instant>,
    successes: u64,
}

#[derive(Debug)]
pub struct Pacer {
    base: f64,
    floor: f64,
    clock: DefaultClock,
    state: Mutex<PaceState>,
    /// Fair (FIFO) lock: who asks the limiter next.
    turnstile: tokio::sync::Mutex<()>,
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
            base,
            floor: (base / 16.0).max(0.01),
            state: Mutex::new(PaceState {
                rate: base,
                limiter: limiter(base, &clock),
                paused_until: None,
                successes: 0,
            }),
            clock,
            turnstile: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PaceState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current pace in requests per second.
    pub fn rate(&self) -> f64 {
        self.lock().rate
    }

    /// Waits for this request's turn.
    pub async fn acquire(&self) {
        let _turn = self.turnstile.lock().await;
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

    /// A 429: everyone waits `retry_after` (1 s if unsaid) and the pace halves.
    pub fn on_rate_limited(&self, retry_after: Option<Duration>) {
        let mut s = self.lock();
        let until = Instant::now() + retry_after.unwrap_or(Duration::from_secs(1));
        s.paused_until = Some(s.paused_until.map_or(until, |p| p.max(until)));
        let slower = (s.rate / 2.0).max(self.floor);
        if slower < s.rate {
            s.rate = slower;
            s.limiter = limiter(slower, &self.clock);
        }
        s.successes = 0;
    }

    /// A request that was not rate-limited: after enough of them the pace rises again.
    pub fn on_success(&self) {
        let mut s = self.lock();
        if s.rate >= self.base {
            return;
        }
        s.successes += 1;
        if s.successes as f64 >= (s.rate * 5.0).max(10.0) {
            s.rate = (s.rate * 1.25).min(self.base);
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
        pacer.acquire().await;
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
                    pacer.acquire().await;
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
}
