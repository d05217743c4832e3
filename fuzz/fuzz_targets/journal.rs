//! Any bytes as a journal: reading may report corruption, never panic, and replay is a fold
//! that must accept whatever reading returns.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((records, recovery)) = kling_batch::journal::parse_bytes(data) {
        assert!(recovery.valid_len as usize <= data.len());
        let once = kling_batch::journal::replay(&records);
        let twice = kling_batch::journal::replay(&[records.clone(), records].concat());
        assert_eq!(once, twice, "replay is idempotent");
    }
});
