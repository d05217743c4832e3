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

/// Whether an HTTP `Host` header names this machine's loopback (`127.x.y.z`, `localhost`,
/// `[::1]`, with or without a port). A server on loopback that answers other names can be reached
/// from a web page through DNS rebinding; it answers only these.
pub fn loopback_host(host: Option<&str>) -> bool {
    let Some(host) = host.map(str::trim) else {
        return false;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                name
            } else {
                host
            }
        })
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod loopback_tests {
    use super::loopback_host;

    #[test]
    fn only_loopback_names_pass() {
        for ok in ["127.0.0.1:8080", "localhost:1", "LOCALHOST", "[::1]:9", "127.1.2.3"] {
            assert!(loopback_host(Some(ok)), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "127.0.0.1.evil.example",
            "10.0.0.1:80",
            "",
            "[::2]:1",
        ] {
            assert!(!loopback_host(Some(bad)), "{bad}");
        }
        assert!(!loopback_host(None));
    }
}
