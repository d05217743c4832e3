//! Lowercase hexadecimal, for hashes and ids: job ids, idempotency keys, file checksums, signatures.

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}
