//! Approvals: `plan_sweep` hands the agent a token bound to the plan it showed — the plan's content
//! digest (the manifest and every file it names), its estimate, the runs folder — that expires.
//! `start_sweep` accepts only a token that matches the plan it would start now, and only once (the
//! book records every token used, under its lock), so the human who approved "this plan, at this
//! cost" approved exactly one sweep of exactly what runs. The token is an HMAC-SHA256 under the
//! server's secret (kept in the runs folder, so it survives a restart); nothing in it can be forged
//! or moved to another plan, folder or estimate.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How long an approval holds.
pub const LIFETIME_SECONDS: u64 = 3600;

/// What one approval approves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approved<'a> {
    /// `Plan::content_digest` of the plan shown.
    pub digest: &'a str,
    /// The estimate shown, µ¢.
    pub estimate_micro: u64,
    /// The runs folder it may run in.
    pub runs: &'a str,
}

/// The MAC of `message`, hex (`None` only if the key were refused, which HMAC never does).
fn mac(secret: &[u8], message: &str) -> Option<String> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).ok()?;
    mac.update(message.as_bytes());
    Some(crate::util::hex::hex(&mac.finalize().into_bytes()))
}

impl Approved<'_> {
    fn message(&self) -> String {
        format!(
            "kling-batch approval v2\n{}\n{}\n{}",
            self.digest, self.estimate_micro, self.runs
        )
    }
}

/// `PREFIX.EXPIRES.MAC` over `message` and the expiry.
fn seal(prefix: &str, secret: &[u8], message: &str, expires: u64) -> String {
    let mac = mac(secret, &format!("{message}\n{expires}")).unwrap_or_default();
    format!("{prefix}.{expires}.{mac}")
}

fn unseal(prefix: &str, secret: &[u8], token: &str, message: &str, now: u64) -> Result<(), Refusal> {
    let mut parts = token.trim().splitn(3, '.');
    let (Some(given_prefix), Some(expires), Some(given)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Refusal::Malformed);
    };
    if given_prefix != prefix {
        return Err(Refusal::Malformed);
    }
    let expires: u64 = expires.parse().map_err(|_| Refusal::Malformed)?;
    let expected = mac(secret, &format!("{message}\n{expires}")).ok_or(Refusal::Mismatch)?;
    if given.len() != expected.len() || !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
        return Err(Refusal::Mismatch);
    }
    if now > expires {
        return Err(Refusal::Expired);
    }
    Ok(())
}

/// A token for `approved`, valid until `expires` (seconds since the epoch):
/// `kba2.ESTIMATE.EXPIRES.MAC`. The estimate is readable (a start is checked against the estimate
/// the human was shown, live quotes included, without asking the service again) and bound by the MAC.
pub fn issue(secret: &[u8], approved: &Approved<'_>, expires: u64) -> String {
    let sealed = seal("kba2", secret, &approved.message(), expires);
    let rest = sealed.strip_prefix("kba2.").unwrap_or(&sealed);
    format!("kba2.{}.{rest}", approved.estimate_micro)
}

/// Why a token is not an approval of this plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this is not an approval token from plan_sweep")]
    Malformed,
    #[error("the approval expired")]
    Expired,
    #[error("the approval is for another plan, estimate or runs folder")]
    Mismatch,
}

/// Checks `token` against the plan about to start (`digest`, in `runs`), at `now` (seconds since
/// the epoch); the estimate it approved, µ¢.
pub fn check(secret: &[u8], token: &str, digest: &str, runs: &str, now: u64) -> Result<u64, Refusal> {
    let mut parts = token.trim().splitn(3, '.');
    let (Some("kba2"), Some(estimate), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Refusal::Malformed);
    };
    let estimate_micro: u64 = estimate.parse().map_err(|_| Refusal::Malformed)?;
    let approved = Approved {
        digest,
        estimate_micro,
        runs,
    };
    unseal("kba2", secret, &format!("kba2.{rest}"), &approved.message(), now)?;
    Ok(estimate_micro)
}

/// The state a client echoes back with the human's answer (MCP's multi-round-trip requests):
/// sealed to the one start or resume it asked about, so an answer cannot be carried to another.
pub fn seal_question(secret: &[u8], question: &str, expires: u64) -> String {
    seal("kbq1", secret, question, expires)
}

/// Whether `state` is the sealed state of `question`, still in time.
pub fn is_question(secret: &[u8], state: &str, question: &str, now: u64) -> bool {
    unseal("kbq1", secret, state, question, now).is_ok()
}

/// What the book keeps of a used token, to refuse it a second time (its MAC: the token itself
/// is not kept).
pub fn used_mark(token: &str) -> String {
    token.trim().rsplit('.').next().unwrap_or("").to_string()
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
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            crate::util::hex::hex(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_token_approves_its_plan_only_in_its_folder_and_not_for_ever() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let a = Approved {
            digest: "digest-a",
            estimate_micro: 1_000,
            runs: "/runs",
        };
        let token = issue(secret, &a, 2_000);
        assert_eq!(check(secret, &token, "digest-a", "/runs", 1_999), Ok(1_000));
        assert_eq!(
            check(secret, &token, "digest-b", "/runs", 1_999),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            check(secret, &token, "digest-a", "/elsewhere", 1_999),
            Err(Refusal::Mismatch)
        );
        // Another estimate written into the token breaks its signature, as does a later expiry.
        let lowered = token.replacen("kba2.1000.", "kba2.999.", 1);
        assert_ne!(lowered, token);
        assert_eq!(
            check(secret, &lowered, "digest-a", "/runs", 1_999),
            Err(Refusal::Mismatch)
        );
        let moved = token.replacen(".2000.", ".9999.", 1);
        assert_ne!(moved, token);
        assert_eq!(
            check(secret, &moved, "digest-a", "/runs", 1_999),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            check(b"another secret, 32 bytes long....", &token, "digest-a", "/runs", 1_999),
            Err(Refusal::Mismatch)
        );
        assert_eq!(check(secret, &token, "digest-a", "/runs", 2_001), Err(Refusal::Expired));
        assert_eq!(
            check(secret, "nonsense", "digest-a", "/runs", 1_999),
            Err(Refusal::Malformed)
        );
        assert_eq!(used_mark(&token).len(), 64);
    }

    #[test]
    fn a_sealed_question_answers_only_itself_in_time() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let state = seal_question(secret, "start|a|digest|500", 100);
        assert!(is_question(secret, &state, "start|a|digest|500", 99));
        assert!(!is_question(secret, &state, "start|b|digest|500", 99));
        assert!(!is_question(secret, &state, "start|a|digest|500", 101));
        assert!(!is_question(
            b"another secret, 32 bytes long....",
            &state,
            "start|a|digest|500",
            99
        ));
        // An approval is not a question's state, nor the other way round.
        let approved = Approved {
            digest: "d",
            estimate_micro: 1,
            runs: "/r",
        };
        let token = issue(secret, &approved, 100);
        assert!(!is_question(secret, &token, &approved.message(), 99));
        assert_eq!(check(secret, &state, "d", "/r", 99), Err(Refusal::Malformed));
    }
}
