//! Small helpers every stage may use and none owns: hex text, a seeded random source, time
//! formats, money as integer micro-cents, logging set-up, and the named crash points of the
//! crash tests. Nothing here knows about jobs, manifests or the API.

pub mod console;
pub mod crash;
pub mod hex;
pub mod logging;
pub mod money;
pub mod net;
pub mod range;
pub mod rng;
pub mod shell;
pub mod slug;
pub mod time_format;
pub mod within;
