//! Any bytes as a YAML or CSV manifest: reading and planning may refuse, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // YAML is read from the text itself; CSV (and bytes that are not UTF-8) through a file.
    if data.first().is_some_and(|b| b % 4 != 0)
        && let Ok(text) = std::str::from_utf8(data)
    {
        if let Ok(manifest) = kling_batch::manifest::from_yaml(text, std::path::Path::new("m.yaml")) {
            let _ = kling_batch::plan::expand(&manifest);
        }
        return;
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let name = if data.first().is_some_and(|b| b % 4 == 0) {
        "m.csv"
    } else {
        "m.yaml"
    };
    let path = dir.path().join(name);
    std::fs::write(&path, data).expect("write");
    if let Ok(manifest) = kling_batch::manifest::load(&path) {
        let _ = kling_batch::plan::expand(&manifest);
    }
});
