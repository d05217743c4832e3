//! Words for a failed HTTP exchange, shared by the API client and the downloads.

/// What went wrong, from a reqwest error and the innermost of its causes, with any URL (and so
/// any signed query) left out.
pub fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut message = if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connect() {
        "could not connect".to_string()
    } else {
        error.to_string()
    };
    // The innermost cause says what happened ("connection reset by peer", …).
    let mut source = std::error::Error::source(&error);
    let mut innermost = None;
    while let Some(s) = source {
        innermost = Some(s.to_string());
        source = s.source();
    }
    if let Some(cause) = innermost.filter(|c| !message.contains(c.as_str())) {
        message = format!("{message}: {cause}");
    }
    message
}
