//! Approvals: `plan_sweep` hands the agent a token bound to the plan it showed — the plan's digest
//! and its estimate — that expires. `start_sweep` accepts only a token that matches the plan it
//! would start now, so the human who approved "this plan, at this cost" approved exactly what runs.
//! The token is an HMAC-SHA256 under the server's secret (kept in the runs folder, so it survives a
//! restart); nothing in it can be forged or moved to another plan.

use sha2::{Digest, Sha256};

/// How long an approval holds.
pub const LIFETIME_SECONDS: u64 = 3600;

/// HMAC-SHA256 (RFC 2104).
fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

fn message(digest: &str, estimate_micro: u64, expires: u64) -> String {
    format!("kling-batch approval v1|{digest}|{estimate_micro}|{expires}")
}

/// A token for the plan with `digest` and estimate `estimate_micro` (µ¢), valid until `expires`
/// (seconds since the epoch).
pub fn issue(secret: &[u8], digest: &str, estimate_micro: u64, expires: u64) -> String {
    let mac = hmac(secret, message(digest, estimate_micro, expires).as_bytes());
    format!("kba1.{expires}.{}", crate::util::hex::hex(&mac))
}

/// Why a token is not an approval of this plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this is not an approval token from plan_sweep")]
    Malformed,
    #[error("the approval expired; call plan_sweep again and ask the human to approve the plan it shows")]
    Expired,
    #[error(
        "the approval is for another plan or another estimate; call plan_sweep on this manifest and ask the human to approve what it shows"
    )]
    Mismatch,
}

/// Checks `token` against the plan about to start, at `now` (seconds since the epoch).
pub fn check(secret: &[u8], token: &str, digest: &str, estimate_micro: u64, now: u64) -> Result<(), Refusal> {
    let mut parts = token.trim().splitn(3, '.');
    let (Some("kba1"), Some(expires), Some(mac)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Refusal::Malformed);
    };
    let expires: u64 = expires.parse().map_err(|_| Refusal::Malformed)?;
    let expected = issue(secret, digest, estimate_micro, expires);
    let given = format!("kba1.{expires}.{mac}");
    // Compared in full, whatever differs first.
    let same =
        expected.len() == given.len() && expected.bytes().zip(given.bytes()).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0;
    if !same {
        return Err(Refusal::Mismatch);
    }
    if now > expires {
        return Err(Refusal::Expired);
    }
    Ok(())
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
        let mac = hmac(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            crate::util::hex::hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_token_approves_its_plan_only_and_not_for_ever() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let token = issue(secret, "digest-a", 1_000, 2_000);
        assert_eq!(check(secret, &token, "digest-a", 1_000, 1_999), Ok(()));
        assert_eq!(check(secret, &token, "digest-b", 1_000, 1_999), Err(Refusal::Mismatch));
        assert_eq!(check(secret, &token, "digest-a", 1_001, 1_999), Err(Refusal::Mismatch));
        assert_eq!(
            check(b"another secret, 32 bytes long....", &token, "digest-a", 1_000, 1_999),
            Err(Refusal::Mismatch)
        );
        assert_eq!(check(secret, &token, "digest-a", 1_000, 2_001), Err(Refusal::Expired));
        // A later expiry written into the token breaks its signature.
        let moved = token.replacen("2000", "9999", 1);
        assert_eq!(check(secret, &moved, "digest-a", 1_000, 1_999), Err(Refusal::Mismatch));
        assert_eq!(
            check(secret, "nonsense", "digest-a", 1_000, 1_999),
            Err(Refusal::Malformed)
        );
    }
}
