//! Simulated time. Generation takes 30–120 simulated seconds; a time scale compresses it (100×
//! makes a minute last 0.6 s). Tests may use a manual clock and move it by hand instead.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub enum SimClock {
    /// Simulated time runs `scale` times faster than real time.
    Scaled { start: Instant, scale: f64 },
    /// Simulated time moves only when `advance` is called.
    Manual(Mutex<Duration>),
}

impl SimClock {
    pub fn scaled(scale: f64) -> SimClock {
        SimClock::Scaled {
            start: Instant::now(),
            scale: if scale.is_finite() && scale > 0.0 { scale } else { 1.0 },
        }
    }

    pub fn manual() -> SimClock {
        SimClock::Manual(Mutex::new(Duration::ZERO))
    }

    /// Simulated time since the simulator started.
    pub fn now(&self) -> Duration {
        match self {
            SimClock::Scaled { start, scale } => start.elapsed().mul_f64(*scale),
            SimClock::Manual(t) => *t.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Simulated seconds per real second; 0 for a manual clock.
    pub fn scale(&self) -> f64 {
        match self {
            SimClock::Scaled { scale, .. } => *scale,
            SimClock::Manual(_) => 0.0,
        }
    }

    /// Moves a manual clock forward; a scaled clock ignores it.
    pub fn advance(&self, by: Duration) {
        if let SimClock::Manual(t) = self {
            *t.lock().unwrap_or_else(|e| e.into_inner()) += by;
        }
    }
}
