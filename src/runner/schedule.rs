//! When to look at a task again. The first poll goes just before its expected generation time,
//! later ones follow in short steps that grow, with jitter; a `Retry-After` on the status answer
//! wins. Expected times start from the public guidance (30–120 s by length and resolution) and
//! are learned online per model, length and resolution from what polls observe.

use crate::kling::Endpoint;
use crate::kling::pricing::PricedShape;
use crate::util::rng::Rng;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// What generation time depends on: model, resolution (with the model's default filled in),
/// sound, and length. Shared with the plan, so a job's shape costs one pointer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shape {
    priced: Arc<PricedShape>,
    seconds: u32,
}

impl Shape {
    pub fn of(priced: &Arc<PricedShape>, seconds: u32) -> Shape {
        Shape {
            priced: priced.clone(),
            seconds,
        }
    }

    /// The public guidance: 30 s for a short 720p clip up to 120 s for a long 4k one.
    fn guidance(&self) -> f64 {
        let length = (f64::from(self.seconds.clamp(3, 15)) - 3.0) / 12.0;
        let resolution = match self.priced.output_resolution.as_deref() {
            Some("4k") => 30.0,
            Some("1080p") => 15.0,
            _ => 0.0,
        };
        let slow = matches!(self.priced.endpoint, Endpoint::MotionControl | Endpoint::AiAvatar);
        (30.0 + 60.0 * length + resolution + if slow { 30.0 } else { 0.0 }).min(120.0)
    }
}

#[derive(Debug, Clone, Copy)]
struct Learned {
    mean: f64,
    samples: u32,
}

#[derive(Debug)]
pub struct PollSchedule {
    /// Real seconds per simulated second (1 against the real service).
    time_scale: f64,
    learned: HashMap<Shape, Learned>,
    rng: Rng,
}

/// The first poll goes this far into the expected time, so an early finish is not missed by much.
const FIRST: f64 = 0.9;
/// After the expected time, steps start at this share of it and grow by half each time.
const STEP: f64 = 0.08;
const GROWTH: f64 = 1.5;
/// No step longer than this (real seconds, before the time scale).
const MAX_STEP: f64 = 60.0;

impl PollSchedule {
    pub fn new(time_scale: f64, seed: u64) -> PollSchedule {
        let time_scale = if time_scale.is_finite() && time_scale > 0.0 {
            time_scale
        } else {
            1.0
        };
        PollSchedule {
            time_scale,
            learned: HashMap::new(),
            rng: Rng::new(seed),
        }
    }

    /// Expected generation time in real seconds.
    pub fn expected(&self, shape: &Shape) -> f64 {
        self.learned
            .get(shape)
            .map_or_else(|| shape.guidance() / self.time_scale, |l| l.mean)
    }

    fn jitter(&mut self, seconds: f64) -> Duration {
        Duration::from_secs_f64((seconds * self.rng.between(0.95, 1.05)).max(0.001))
    }

    /// How long after submitting to look first.
    pub fn first(&mut self, shape: &Shape) -> Duration {
        let e = self.expected(shape);
        self.jitter(e * FIRST)
    }

    /// How long to wait after a poll at `elapsed` (since submit) found the task unfinished, the
    /// `polls`-th poll so far.
    pub fn next(&mut self, shape: &Shape, elapsed: Duration, polls: u32, retry_after: Option<Duration>) -> Duration {
        let e = self.expected(shape);
        let t = elapsed.as_secs_f64();
        let past = (t - e).max(0.0);
        let mut step = e * STEP;
        // Grow by half for every step already spent past the expected time.
        let steps_past = if past > 0.0 {
            (past / (e * STEP)).max(1.0).log(GROWTH).ceil()
        } else {
            0.0
        };
        step *= GROWTH.powf(steps_past.min(12.0));
        let step = step.min(MAX_STEP / self.time_scale).max(0.001);
        let wait = if t + step < e * FIRST && polls == 0 {
            e * FIRST - t
        } else {
            step
        };
        let wait = self.jitter(wait);
        retry_after.map_or(wait, |r| wait.max(r))
    }

    /// A task of `shape` finished between `low` (last poll that saw it unfinished) and `high`.
    pub fn learn(&mut self, shape: &Shape, low: Duration, high: Duration) {
        let sample = (low.as_secs_f64() + high.as_secs_f64()) / 2.0;
        let entry = self.learned.entry(shape.clone()).or_insert(Learned {
            mean: sample,
            samples: 0,
        });
        entry.samples += 1;
        // A running mean for the first samples, then an exponential average that follows drift.
        let weight = (1.0 / f64::from(entry.samples)).max(0.2);
        entry.mean += weight * (sample - entry.mean);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn shape() -> Shape {
        let Value::Object(request) = json!({"model": "kling-3.0", "output_resolution": "720p"}) else {
            unreachable!()
        };
        Shape::of(
            &Arc::new(crate::kling::pricing::priced_shape(Endpoint::TextToVideo, &request)),
            5,
        )
    }

    #[test]
    fn first_poll_is_just_before_the_guidance_scaled() {
        let mut s = PollSchedule::new(100.0, 1);
        let first = s.first(&shape()).as_secs_f64();
        // 5 s at 720p: 40 s of guidance, 0.4 s at ×100; the first look at 90 % of it.
        assert!((0.34..=0.38).contains(&first), "{first}");
    }

    #[test]
    fn steps_grow_past_the_expected_time_and_honour_retry_after() {
        let mut s = PollSchedule::new(1.0, 1);
        let e = s.expected(&shape());
        let a = s.next(&shape(), Duration::from_secs_f64(e), 1, None).as_secs_f64();
        let b = s
            .next(&shape(), Duration::from_secs_f64(e * 2.0), 5, None)
            .as_secs_f64();
        assert!(a < b, "{a} {b}");
        assert!(a <= e * STEP * 1.6);
        assert!(b <= MAX_STEP * 1.05);
        assert_eq!(
            s.next(&shape(), Duration::from_secs_f64(e), 1, Some(Duration::from_secs(90))),
            Duration::from_secs(90)
        );
    }

    #[test]
    fn learns_from_observations() {
        let mut s = PollSchedule::new(1.0, 1);
        for _ in 0..10 {
            s.learn(&shape(), Duration::from_secs(9), Duration::from_secs(11));
        }
        assert!((s.expected(&shape()) - 10.0).abs() < 0.5);
    }
}
