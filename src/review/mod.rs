//! Review: people pick the winners of a sweep. What they say is kept as records beside the run's
//! state (`records`); votes become scores per clip and per parameter value (`scores`); the clips
//! are the run's jobs laid out as the gallery lays them out (`clips`); ratings made elsewhere come
//! in from a CSV file (`import`); and the app serves it all on loopback (`app`, `page.html`).

pub mod app;
pub mod clips;
pub mod import;
pub mod records;
pub mod scores;
pub mod verdicts;
mod videos;
