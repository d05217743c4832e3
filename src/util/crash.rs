//! Named crash points for the crash tests: with `KLING_BATCH_CRASH_AT=<name>:<n>` in the
//! environment, the process aborts (no unwinding, no flushing: like a power cut) the n-th time
//! it passes the point `<name>`. Without the variable a point costs one relaxed atomic load.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

struct Target {
    name: String,
    after: u64,
    seen: AtomicU64,
}

fn target() -> Option<&'static Target> {
    static TARGET: OnceLock<Option<Target>> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            let spec = std::env::var("KLING_BATCH_CRASH_AT").ok()?;
            let (name, n) = spec.rsplit_once(':').unwrap_or((spec.as_str(), "1"));
            Some(Target {
                name: name.to_string(),
                after: n.parse().unwrap_or(1).max(1),
                seen: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Aborts here if this is the configured crash point and its turn has come.
pub fn point(name: &str) {
    if let Some(t) = target()
        && t.name == name
        && t.seen.fetch_add(1, Ordering::Relaxed) + 1 == t.after
    {
        std::process::abort();
    }
}
