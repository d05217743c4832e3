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

/// The base URL without a trailing slash, if it is https, or http to a loopback host.
pub fn check_base_url(url: &str) -> Result<String, CredentialsError> {
    let url = url.trim().trim_end_matches('/');
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") && lower.len() > "https://".len() {
        return Ok(url.to_string());
    }
    let Some(rest) = lower.strip_prefix("http://") else {
        return Err(CredentialsError::BadUrl(url.to_string()));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(url.to_string())
    } else {
        Err(CredentialsError::PlainHttp(url.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

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
