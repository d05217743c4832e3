//! API failures as data: what happened, and what kind of failure it is, so callers decide on
//! retries by class, never by string matching.

use std::time::{Duration, SystemTime};

/// The longest `Retry-After` honoured; larger (or absurd) values are clamped to it.
pub(super) const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// The server answered with an error status.
    Status {
        status: u16,
        code: Option<String>,
        message: String,
        retry_after: Option<Duration>,
    },
    /// No usable answer: connection refused or reset, timeout, or an unreadable body. The
    /// request may or may not have been acted on.
    Transport { message: String },
    /// Not sent at all: checked at the moment it would have left, it was no longer worth sending
    /// (a create whose uploads would have expired). The service never saw it.
    NotSent { message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Try again later (5xx, timeouts, resets, unreadable answers).
    Transient,
    /// 429: everyone slows down.
    RateLimited,
    /// 401/403 from the API: the key is missing or refused.
    Auth,
    /// 402: the account is out of credits.
    Credits,
    /// 400/422: the request itself is wrong; retrying will not help.
    Invalid,
    /// 409: the idempotency key was used with another body.
    Conflict,
    /// 409 `source_task_not_ready`: a continuation's source has not completed (as far as the
    /// create path sees); no task was made. Worth trying again shortly.
    NotReady,
    NotFound,
    /// Anything else the service says no to.
    Refused,
    /// Held back before it left (`ApiError::NotSent`): nothing reached the service.
    NotSent,
}

impl ApiError {
    pub fn class(&self) -> Class {
        match self {
            ApiError::Transport { .. } => Class::Transient,
            ApiError::NotSent { .. } => Class::NotSent,
            ApiError::Status { status, code, .. } => match status {
                401 | 403 => Class::Auth,
                402 => Class::Credits,
                400 | 413 | 415 | 422 => Class::Invalid,
                404 | 410 => Class::NotFound,
                409 if code.as_deref() == Some("source_task_not_ready") => Class::NotReady,
                409 => Class::Conflict,
                408 | 425 | 500..=599 => Class::Transient,
                429 => Class::RateLimited,
                _ => Class::Refused,
            },
        }
    }

    /// The machine code of an error answer (`error.code`), if it gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Status { code, .. } => code.as_deref(),
            ApiError::Transport { .. } | ApiError::NotSent { .. } => None,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Status { retry_after, .. } => *retry_after,
            ApiError::Transport { .. } | ApiError::NotSent { .. } => None,
        }
    }

    pub fn message(&self) -> String {
        match self {
            ApiError::Status {
                status, code, message, ..
            } => match code {
                Some(code) => format!("HTTP {status} {code}: {message}"),
                None => format!("HTTP {status}: {message}"),
            },
            ApiError::Transport { message } | ApiError::NotSent { message } => message.clone(),
        }
    }

    /// A transport failure from reqwest, with any URL (and so any signed query) left out.
    pub fn transport(error: reqwest::Error) -> ApiError {
        ApiError::Transport {
            message: crate::util::net::describe(error),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for ApiError {}

/// `Retry-After` as seconds or an HTTP-date, clamped to [0, MAX_RETRY_AFTER].
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0)
            .then(|| Duration::from_secs_f64(seconds.min(MAX_RETRY_AFTER.as_secs_f64())));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_both_forms_and_clamped() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("0.5", now), Some(Duration::from_millis(500)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("99999999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("-4", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        let past = httpdate::fmt_http_date(now - Duration::from_secs(60));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
    }

    #[test]
    fn classes() {
        let status = |s| {
            ApiError::Status {
                status: s,
                code: None,
                message: String::new(),
                retry_after: None,
            }
            .class()
        };
        assert_eq!(status(503), Class::Transient);
        assert_eq!(status(429), Class::RateLimited);
        assert_eq!(status(422), Class::Invalid);
        assert_eq!(status(402), Class::Credits);
        assert_eq!(status(401), Class::Auth);
        assert_eq!(
            ApiError::Transport {
                message: "reset".into()
            }
            .class(),
            Class::Transient
        );
    }
}
