//! Any bytes as a YAML or CSV manifest: reading and planning may refuse, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("a temp dir");
    let name = if data.first().is_some_and(|b| b % 4 == 0) { "m.csv" } else { "m.yaml" };
    let path = dir.path().join(name);
    std::fs::write(&path, data).expect("write");
    if let Ok(manifest) = kling_batch::manifest::load(&path) {
        let _ = kling_batch::plan::expand(&manifest);
    }
});
