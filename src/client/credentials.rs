//! Where the API key and base URL come from, with the official RunAPI CLI's precedence:
//! key from `RUNAPI_API_KEY`, else the CLI's config file; base URL from `--api-base`, else
//! `RUNAPI_BASE_URL`, else the config file, else `https://runapi.ai`. The key is held in a type
//! that never prints it.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub const DEFAULT_BASE_URL: &str = "https://runapi.ai";

/// An API key. `Debug` and `Display` show only that a key is there.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }

    /// The key itself, for the `Authorization` header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `text` holds the key in any spelling a service (or a URL) might give it: as is or
    /// in another case, as hex of its bytes (either case), percent-encoded (any case, any part),
    /// JSON-escaped (`\u0073k-…`), or inside base64 (of the key, or of `Bearer <key>`, in either
    /// alphabet). A key under 4 characters is no key anyone issues.
    pub fn found_in(&self, text: &str) -> bool {
        let key = self.0.as_str();
        if key.len() < 4 {
            return false;
        }
        let lower = text.to_ascii_lowercase();
        if self.plain_forms().iter().any(|form| lower.contains(form.as_str())) {
            return true;
        }
        let lower_key = key.to_ascii_lowercase();
        if text.contains('%')
            && percent_encoding::percent_decode_str(text)
                .decode_utf8_lossy()
                .to_ascii_lowercase()
                .contains(&lower_key)
        {
            return true;
        }
        if text.contains("\\u") && json_unescaped(text).to_ascii_lowercase().contains(&lower_key) {
            return true;
        }
        base64_cores(key).iter().any(|core| text.contains(core.as_str()))
    }

    /// The spellings found whatever their case: the key, and its bytes in hex.
    fn plain_forms(&self) -> [String; 2] {
        [self.0.to_ascii_lowercase(), crate::util::hex::hex(self.0.as_bytes())]
    }

    /// `text` with every occurrence of the key (in any case, or as hex) replaced by `***`: for
    /// anything a service says, which may quote the key back (`Invalid API key: sk-…`, an echoed
    /// Authorization header). A text that holds it in another spelling is withheld whole.
    pub fn scrub(&self, text: String) -> String {
        if !self.found_in(&text) {
            return text;
        }
        let mut replaced = text;
        for form in self.plain_forms() {
            // ASCII lower-casing keeps every byte where it was, so places found in the lower-cased
            // text are places in the text.
            let lower = replaced.to_ascii_lowercase();
            let places: Vec<usize> = lower.match_indices(form.as_str()).map(|(at, _)| at).collect();
            for at in places.into_iter().rev() {
                replaced.replace_range(at..at + form.len(), "***");
            }
        }
        if self.found_in(&replaced) {
            "(withheld: the text quoted the API key in an encoded form)".to_string()
        } else {
            replaced
        }
    }
}

/// `text` with JSON's `\uXXXX` escapes decoded.
fn json_unescaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("\\u") {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 2..at + 6).and_then(|h| u32::from_str_radix(h, 16).ok());
        match code.and_then(char::from_u32) {
            Some(c) => {
                out.push(c);
                rest = &rest[at + 6..];
            }
            None => {
                out.push_str("\\u");
                rest = &rest[at + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The parts of base64 that any text holding the key encodes the same way, at each of the three
/// offsets the key can start at (one of them is `Bearer <key>`'s), in both alphabets.
fn base64_cores(key: &str) -> Vec<String> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let mut cores = Vec::new();
    for offset in 0..3usize {
        let mut bytes = vec![0u8; offset];
        bytes.extend_from_slice(key.as_bytes());
        // Characters fully determined by the key's bytes: skip the ones mixing in the padding
        // before it, and the last partial group after it.
        let start = (offset * 8).div_ceil(6);
        let end = (bytes.len() * 8) / 6;
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let encoded = engine.encode(&bytes);
            if let Some(core) = encoded.get(start..end.min(encoded.len()))
                && core.len() >= 6
            {
                cores.push(core.to_string());
            }
        }
    }
    cores
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub api_key: ApiKey,
    pub base_url: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialsError {
    #[error("no API key: RUNAPI_API_KEY is not set and {} has none", .config.display())]
    NoKey { config: PathBuf },
    #[error("{} is not valid JSON: {message}", .path.display())]
    BadConfig { path: PathBuf, message: String },
    #[error("the base URL `{0}` is not an http(s) URL")]
    BadUrl(String),
    #[error("refusing plain http:// to `{0}`: only loopback addresses may be reached without TLS")]
    PlainHttp(String),
    #[error("the base URL `{0}` carries a user name or password, which would send them to that host")]
    Userinfo(String),
}

impl CredentialsError {
    pub fn hint(&self) -> &'static str {
        match self {
            CredentialsError::NoKey { .. } => {
                "export RUNAPI_API_KEY=…, or run `runapi login`; to try without a key, add --simulate"
            }
            CredentialsError::BadConfig { .. } => "fix the file or set RUNAPI_API_KEY, which takes precedence",
            CredentialsError::BadUrl(_) | CredentialsError::PlainHttp(_) => {
                "use https://, or http://127.0.0.1:PORT for a local simulator"
            }
            CredentialsError::Userinfo(_) => {
                "give the host alone (the key travels in RUNAPI_API_KEY), e.g. https://runapi.ai or http://127.0.0.1:PORT"
            }
        }
    }
}

/// The environment the resolution reads, so tests need not touch the process's own.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

/// The official CLI's config file: `$RUNAPI_CONFIG_DIR/config.json`, else
/// `$XDG_CONFIG_HOME/runapi/config.json`, else `~/.config/runapi/config.json`.
pub fn config_path(env: &dyn Env) -> PathBuf {
    if let Some(dir) = env.var("RUNAPI_CONFIG_DIR") {
        return Path::new(&dir).join("config.json");
    }
    let base = env
        .var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| env.var("HOME").map(|h| Path::new(&h).join(".config")))
        .unwrap_or_else(|| PathBuf::from(".config"));
    base.join("runapi").join("config.json")
}

#[derive(Debug, Default, serde::Deserialize)]
struct ConfigFile {
    api_key: Option<String>,
    base_url: Option<String>,
}

fn read_config(path: &Path) -> Result<ConfigFile, CredentialsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| CredentialsError::BadConfig {
            path: path.to_path_buf(),
            message: e.to_string(),
        }),
        Err(_) => Ok(ConfigFile::default()),
    }
}

/// Resolves the key and base URL; `api_base` is the `--api-base` flag.
pub fn resolve(env: &dyn Env, api_base: Option<&str>) -> Result<Credentials, CredentialsError> {
    let path = config_path(env);
    let config = read_config(&path)?;
    let key = env
        .var("RUNAPI_API_KEY")
        .or_else(|| config.api_key.filter(|k| !k.trim().is_empty()))
        .ok_or(CredentialsError::NoKey { config: path })?;
    let base = api_base
        .map(str::to_string)
        .or_else(|| env.var("RUNAPI_BASE_URL"))
        .or(config.base_url)
        .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
    Ok(Credentials {
        api_key: ApiKey::new(key.trim()),
        base_url: check_base_url(&base)?,
    })
}

/// The base URL without a trailing slash, if it is https, or http to a loopback host. Parsed
/// with a real URL parser: userinfo is refused (`http://[::1]@host` names `host`), and loopback
/// means the parsed host is a loopback address or `localhost`.
pub fn check_base_url(url: &str) -> Result<String, CredentialsError> {
    let trimmed = url.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed).map_err(|_| CredentialsError::BadUrl(trimmed.to_string()))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(CredentialsError::Userinfo(redact_userinfo(&parsed)));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() || parsed.cannot_be_a_base() {
        return Err(CredentialsError::BadUrl(trimmed.to_string()));
    }
    // The parser's normal form: IPv4 in dotted decimal, IPv6 in brackets.
    let Some(host) = parsed
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
    else {
        return Err(CredentialsError::BadUrl(trimmed.to_string()));
    };
    match parsed.scheme() {
        "https" => Ok(trimmed.to_string()),
        "http" => {
            let loopback =
                host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(trimmed.to_string())
            } else {
                Err(CredentialsError::PlainHttp(trimmed.to_string()))
            }
        }
        _ => Err(CredentialsError::BadUrl(trimmed.to_string())),
    }
}

/// A URL for a message, its user name and password replaced.
fn redact_userinfo(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("***");
    let _ = shown.set_password(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_key_is_found_in_any_spelling_and_never_let_through() {
        use base64::Engine;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let key = ApiKey::new("sk-live-0123456789abcdef");
        let percent: String = "sk-live-0123456789abcdef"
            .bytes()
            .map(|b| format!("%{b:02x}"))
            .collect();
        let upper = percent.to_uppercase();
        let spellings = [
            "https://files.example/u?token=sk-live-0123456789abcdef".to_string(),
            format!("https://files.example/u?token={percent}"),
            format!("https://files.example/u/{upper}/x"),
            "https://files.example/u?token=sk%2Dlive-0123456789abcdef".to_string(),
            r#"{"message":"bad key \u0073k-live-0123456789abcdef"}"#.to_string(),
            format!("auth={}", STANDARD.encode("Bearer sk-live-0123456789abcdef")),
            format!("x {} y", STANDARD.encode("sk-live-0123456789abcdef")),
            format!(
                "q={}",
                URL_SAFE_NO_PAD.encode("Authorization: Bearer sk-live-0123456789abcdef")
            ),
            "error: key SK-LIVE-0123456789ABCDEF is not valid".to_string(),
            format!("echo {}", crate::util::hex::hex(b"sk-live-0123456789abcdef")),
            format!(
                "echo {}",
                crate::util::hex::hex(b"sk-live-0123456789abcdef").to_uppercase()
            ),
        ];
        for text in &spellings {
            assert!(key.found_in(text), "not found in {text}");
            let scrubbed = key.scrub(text.clone());
            assert!(!key.found_in(&scrubbed), "{text} scrubbed to {scrubbed}");
        }
        for clean in [
            "https://files.example/u?token=abc",
            "%41%42 \\u0041 QmVhcmVyIGFiYw==",
            "sk-live-0123456789abcdeX",
        ] {
            assert!(!key.found_in(clean), "{clean}");
            assert_eq!(key.scrub(clean.to_string()), clean);
        }
        assert_eq!(
            key.scrub("Invalid API key: sk-live-0123456789abcdef".into()),
            "Invalid API key: ***"
        );
    }

    struct MapEnv(HashMap<&'static str, String>);
    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    #[test]
    fn precedence_follows_the_official_cli() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"api_key":"from-file","base_url":"https://file.example"}"#,
        )
        .unwrap();
        let mut env = MapEnv(HashMap::from([("RUNAPI_CONFIG_DIR", dir.path().display().to_string())]));
        let c = resolve(&env, None).unwrap();
        assert_eq!(
            (c.api_key.expose(), c.base_url.as_str()),
            ("from-file", "https://file.example")
        );
        env.0.insert("RUNAPI_API_KEY", "from-env".into());
        env.0.insert("RUNAPI_BASE_URL", "https://env.example/".into());
        let c = resolve(&env, None).unwrap();
        assert_eq!(
            (c.api_key.expose(), c.base_url.as_str()),
            ("from-env", "https://env.example")
        );
        let c = resolve(&env, Some("http://127.0.0.1:9")).unwrap();
        assert_eq!(c.base_url, "http://127.0.0.1:9");
        assert_eq!(format!("{:?} {}", c.api_key, c.api_key), "ApiKey(***) ***");
    }

    #[test]
    fn no_key_names_both_places_and_xdg_is_honoured() {
        let env = MapEnv(HashMap::from([("XDG_CONFIG_HOME", "/nonexistent/xdg".to_string())]));
        let err = resolve(&env, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no API key: RUNAPI_API_KEY is not set and /nonexistent/xdg/runapi/config.json has none"
        );
    }

    #[test]
    fn lookalike_loopback_urls_and_userinfo_are_refused() {
        for url in [
            "http://[::1]@example.com:80",
            "http://localhost:1@example.com/",
            "http://user:pw@127.0.0.1:80",
            "https://user@runapi.ai",
        ] {
            assert!(
                matches!(check_base_url(url), Err(CredentialsError::Userinfo(_))),
                "{url}"
            );
        }
        for url in [
            "http://127.0.0.1.example.com/",
            "http://localhost.example.com",
            "http://0x7f000001.example/",
        ] {
            assert!(
                matches!(check_base_url(url), Err(CredentialsError::PlainHttp(_))),
                "{url}"
            );
        }
        assert!(check_base_url("http://127.0.0.2:9/").is_ok());
        assert!(check_base_url("http://LOCALHOST:9").is_ok());
        assert!(check_base_url("https://runapi.ai/").is_ok());
        assert!(matches!(check_base_url("http://"), Err(CredentialsError::BadUrl(_))));
        let e = check_base_url("http://me:secret@example.com").unwrap_err().to_string();
        assert!(!e.contains("secret") && !e.contains("me:"), "{e}");
    }

    #[test]
    fn the_key_is_scrubbed_from_text_it_appears_in() {
        let key = ApiKey::new("sk-live-123456");
        assert_eq!(
            key.scrub("Invalid API key: sk-live-123456 (Bearer sk-live-123456)".into()),
            "Invalid API key: *** (Bearer ***)"
        );
        assert_eq!(
            key.scrub("SK-LIVE-123456 and 736b2d6c6976652d313233343536".into()),
            "*** and ***"
        );
        assert_eq!(key.scrub("nothing here".into()), "nothing here");
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(check_base_url("http://localhost:8787").is_ok());
        assert!(check_base_url("http://[::1]:8787/").is_ok());
        assert_eq!(
            check_base_url("http://runapi.ai").unwrap_err(),
            CredentialsError::PlainHttp("http://runapi.ai".into())
        );
        assert!(matches!(check_base_url("ftp://x"), Err(CredentialsError::BadUrl(_))));
    }
}
