//! Requests to the RunAPI base URL. The key goes in `Authorization` on these requests only;
//! redirects are not followed, so it can never be carried to another host.

use super::error::{ApiError, Class, parse_retry_after};
use super::pacer::{Pacer, Turn};
use crate::client::credentials::{ApiKey, Credentials};
use crate::kling::Endpoint;
use crate::util::money::Money;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Answers larger than this are refused rather than read (the API's bodies are small).
const MAX_BODY: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskStatus {
    Pending,
    Processing,
    Completed,
    Failed,
    /// A status this client does not know: kept polling, as the Go and JS SDKs do.
    Other(String),
}

impl TaskStatus {
    /// The Go SDK's normalisation: `success` is completed; `error`, `generate_failed` and
    /// `create_task_failed` are failed.
    pub fn parse(text: &str) -> TaskStatus {
        match text.to_ascii_lowercase().as_str() {
            "pending" | "queued" => TaskStatus::Pending,
            "processing" | "running" => TaskStatus::Processing,
            "completed" | "success" | "succeeded" => TaskStatus::Completed,
            "failed" | "error" | "generate_failed" | "create_task_failed" => TaskStatus::Failed,
            other => TaskStatus::Other(other.to_string()),
        }
    }
}

/// A task as the status route shows it, in the fields a runner needs.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskView {
    pub id: String,
    pub status: TaskStatus,
    pub video_url: Option<String>,
    /// What the task was billed, from `billing.settlement` or `usage.cost`.
    pub cost: Option<Money>,
    pub error: Option<String>,
    /// A `Retry-After` on the status answer: when to look again.
    pub retry_after: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreatedTask {
    pub view: TaskView,
    pub replayed: bool,
}

#[derive(Debug)]
pub struct RunApi {
    http: reqwest::Client,
    base: String,
    key: ApiKey,
    pacer: Arc<Pacer>,
}

impl RunApi {
    pub fn new(credentials: Credentials, pacer: Arc<Pacer>, timeout: Duration) -> Result<RunApi, ApiError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(timeout)
            .user_agent(concat!("kling-batch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ApiError::transport)?;
        Ok(RunApi {
            http,
            base: credentials.base_url,
            key: credentials.api_key,
            pacer,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    async fn send(&self, request: reqwest::RequestBuilder, what: &str, turn: Turn) -> Result<Value, ApiError> {
        self.send_before(request, what, turn, None).await
    }

    /// `send`, held back when it could only leave at or after `until` (checked after the wait
    /// for the rate, the last moment before it goes).
    async fn send_before(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
        turn: Turn,
        until: Option<SystemTime>,
    ) -> Result<Value, ApiError> {
        self.pacer.acquire(turn).await;
        if let Some(until) = until
            && SystemTime::now() >= until
        {
            return Err(ApiError::NotSent {
                message: format!(
                    "not sent: the uploads its body names expire before the service could see them (the send was due by {})",
                    crate::util::time_format::rfc3339(until)
                ),
            });
        }
        tracing::trace!(request = what, "sending");
        let response = request
            .bearer_auth(self.key.expose())
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(ApiError::transport)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let body = read_capped(response).await?;
        let scrub = |text: String| self.key.scrub(text);
        let result = if (200..300).contains(&status) {
            let mut value: Value = serde_json::from_slice(&body).map_err(|e| ApiError::Transport {
                message: format!("unreadable answer (HTTP {status}): {e}"),
            })?;
            if let (Some(ra), Value::Object(map)) = (retry_after, &mut value) {
                map.insert("__retry_after_ms".into(), json!(ra.as_millis() as u64));
            }
            Ok(value)
        } else {
            // The service's words are stored and shown: never with the key in them.
            let (code, message) = error_fields(&body, status);
            Err(ApiError::Status {
                status,
                code: code.map(scrub),
                message: scrub(message),
                retry_after,
            })
        };
        match &result {
            Err(e) if e.class() == Class::RateLimited => {
                tracing::warn!(request = what, retry_after = ?e.retry_after(), pace = self.pacer.rate(), "rate limited: everyone waits");
                self.pacer.on_rate_limited(e.retry_after());
            }
            Err(e) => {
                tracing::debug!(request = what, status, error = %e, "answered with an error");
                self.pacer.on_success();
            }
            Ok(_) => {
                tracing::debug!(request = what, status, "answered");
                self.pacer.on_success();
            }
        }
        result
    }

    /// `POST /api/v1/kling/{action}` with an Idempotency-Key and the job id as client request id;
    /// not sent at all once `send_until` has passed when its turn comes.
    pub async fn create(
        &self,
        endpoint: Endpoint,
        body: &str,
        idempotency_key: &str,
        client_request_id: &str,
        send_until: Option<SystemTime>,
    ) -> Result<CreatedTask, ApiError> {
        let url = format!("{}/api/v1/kling/{}", self.base, endpoint.as_str());
        let request = self
            .http
            .post(url)
            .header("Idempotency-Key", idempotency_key)
            .header("X-Client-Request-Id", client_request_id)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let what = format!("POST /api/v1/kling/{}", endpoint.as_str());
        let value = self.send_before(request, &what, Turn::Other, send_until).await?;
        let view = self.checked(task_view(&value)?)?;
        Ok(CreatedTask {
            replayed: value.get("task_replayed").and_then(Value::as_bool).unwrap_or(false),
            view,
        })
    }

    /// `GET /api/v1/kling/{action}/{id}`.
    pub async fn get(&self, endpoint: Endpoint, task_id: &str) -> Result<TaskView, ApiError> {
        let what = format!("GET /api/v1/kling/{}/{}", endpoint.as_str(), task_id);
        let url = format!("{}/api/v1/kling/{}/{}", self.base, endpoint.as_str(), task_id);
        let value = self.send(self.http.get(url), &what, Turn::Poll).await?;
        self.checked(task_view(&value)?)
    }

    /// A task as the service described it, with the key kept out of everything we store, show or
    /// send elsewhere: an error text is masked, a video URL or task id holding the key is refused.
    fn checked(&self, mut view: TaskView) -> Result<TaskView, ApiError> {
        if self.key.found_in(&view.id) {
            return Err(ApiError::Transport {
                message: "the answer's task id holds the API key; it is not used".into(),
            });
        }
        view.error = view.error.map(|e| self.key.scrub(e));
        if view.video_url.as_deref().is_some_and(|u| self.key.found_in(u)) {
            tracing::warn!(task = %view.id, "the video URL holds the API key: not fetched");
            view.video_url = None;
        }
        Ok(view)
    }

    /// `GET /api/v1/me`: whether the key is accepted. `Ok(false)` when the service has no such
    /// route (404): nothing can be told, the run goes on.
    pub async fn check_key(&self) -> Result<bool, ApiError> {
        let url = format!("{}/api/v1/me", self.base);
        match self.send(self.http.get(url), "GET /api/v1/me", Turn::Other).await {
            Ok(_) => Ok(true),
            Err(e) if e.class() == Class::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `GET /api/v1/me/balance`: what the account can still spend (`balance_cents`), or `None`
    /// when the service does not say (no such route, another shape).
    pub async fn balance(&self) -> Result<Option<Money>, ApiError> {
        let url = format!("{}/api/v1/me/balance", self.base);
        match self
            .send(self.http.get(url), "GET /api/v1/me/balance", Turn::Other)
            .await
        {
            Ok(value) => Ok(value
                .get("balance_cents")
                .and_then(Value::as_f64)
                .and_then(Money::from_cents_f64)),
            Err(e) if e.class() == Class::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /api/v1/files/prepare`: where and how to PUT a file's bytes (contract §14).
    pub async fn files_prepare(
        &self,
        filename: &str,
        byte_size: u64,
        checksum: &str,
        content_type: &str,
    ) -> Result<Value, ApiError> {
        let url = format!("{}/api/v1/files/prepare", self.base);
        let payload =
            json!({"filename": filename, "byte_size": byte_size, "checksum": checksum, "content_type": content_type});
        self.send(
            self.http.post(url).json(&payload),
            "POST /api/v1/files/prepare",
            Turn::Other,
        )
        .await
    }

    /// `POST /api/v1/files/confirm`: the uploaded file's URL and expiry.
    pub async fn files_confirm(&self, signed_id: &str) -> Result<Value, ApiError> {
        let url = format!("{}/api/v1/files/confirm", self.base);
        self.send(
            self.http.post(url).json(&json!({"signed_id": signed_id})),
            "POST /api/v1/files/confirm",
            Turn::Other,
        )
        .await
    }

    /// Whether `text` holds the API key (a URL from the service must not be used if so).
    pub fn key_in(&self, text: &str) -> bool {
        self.key.found_in(text)
    }

    /// `POST /api/v1/price_quotes`: what the service would reserve for this request.
    pub async fn quote(&self, endpoint: Endpoint, body: &Map<String, Value>) -> Result<Money, ApiError> {
        let url = format!("{}/api/v1/price_quotes", self.base);
        let model = body.get("model").cloned().unwrap_or(Value::Null);
        let payload = json!({"service": "kling", "action": endpoint.as_str(), "model": model, "params": body});
        let value = self
            .send(
                self.http.post(url).json(&payload),
                "POST /api/v1/price_quotes",
                Turn::Other,
            )
            .await?;
        value["price_quote"]["reservation_amount_cents"]
            .as_f64()
            .and_then(Money::from_cents_f64)
            .ok_or_else(|| ApiError::Transport {
                message: "the price quote has no reservation_amount_cents".into(),
            })
    }
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ApiError::transport)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(ApiError::Transport {
                message: format!("the answer is larger than {MAX_BODY} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `error.code` and the message, in the SDKs' extraction order (contract §5.1).
fn error_fields(body: &[u8], status: u16) -> (Option<String>, String) {
    let fallback = || format!("the service answered HTTP {status}");
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return (None, fallback());
    };
    let text = |v: &Value| {
        v.as_str()
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.chars().take(500).collect::<String>())
    };
    let code = value.pointer("/error/code").and_then(text);
    let message = text(&value["error"])
        .or_else(|| value.pointer("/error/message").and_then(text))
        .or_else(|| value.pointer("/errors/0").and_then(text))
        .or_else(|| {
            ["message", "detail", "errorMessage", "msg"]
                .iter()
                .find_map(|k| text(&value[*k]))
        })
        .unwrap_or_else(fallback);
    (code, message)
}

/// A task from a create or status answer, tolerant of the shapes the SDKs accept.
fn task_view(value: &Value) -> Result<TaskView, ApiError> {
    let text = |pointer: &str| value.pointer(pointer).and_then(Value::as_str).map(str::to_string);
    let id = text("/id")
        .or_else(|| text("/task_id"))
        .or_else(|| text("/data/id"))
        .or_else(|| text("/data/task_id"))
        .ok_or_else(|| ApiError::Transport {
            message: "the answer has no task id".into(),
        })?;
    let status = TaskStatus::parse(&text("/status").unwrap_or_else(|| "pending".into()));
    // The settlement's micro-cents when given (exact), else its cents (rounded up), else usage.
    let cost = value
        .pointer("/billing/settlement/amount_micro_cents")
        .and_then(Value::as_u64)
        .map(Money::from_micro_cents)
        .or_else(|| {
            value
                .pointer("/billing/settlement/charged_amount_cents")
                .and_then(Value::as_f64)
                .and_then(Money::from_cents_f64)
        })
        .or_else(|| {
            value
                .pointer("/usage/cost")
                .and_then(Value::as_f64)
                .and_then(Money::from_usd_f64)
        });
    let error = value.get("error").and_then(|e| {
        e.as_str()
            .map(str::to_string)
            .or_else(|| e.get("message").and_then(Value::as_str).map(str::to_string))
    });
    Ok(TaskView {
        id,
        status,
        video_url: text("/videos/0/url"),
        cost,
        error,
        retry_after: value
            .get("__retry_after_ms")
            .and_then(Value::as_u64)
            .map(Duration::from_millis),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerant_task_parsing() {
        let v = json!({"data": {"task_id": "t1"}, "status": "success", "videos": [{"url": "https://x/v.mp4"}],
                       "billing": {"settlement": {"charged_amount_cents": 113}}});
        let t = task_view(&v).unwrap();
        assert_eq!((t.id.as_str(), &t.status), ("t1", &TaskStatus::Completed));
        assert_eq!(t.cost, Some(Money::from_cents(113)));
        let exact = json!({"id": "t4", "status": "completed",
                           "billing": {"settlement": {"charged_amount_cents": 88, "amount_micro_cents": 87_500_000}}});
        assert_eq!(
            task_view(&exact).unwrap().cost,
            Some(Money::from_micro_cents(87_500_000))
        );
        let failed = task_view(&json!({"id": "t2", "status": "failed", "error": "Generation failed"})).unwrap();
        assert_eq!(failed.error.as_deref(), Some("Generation failed"));
        assert_eq!(
            task_view(&json!({"id": "t3", "status": "weird"})).unwrap().status,
            TaskStatus::Other("weird".into())
        );
        assert!(task_view(&json!({"status": "pending"})).is_err());
    }

    #[test]
    fn error_messages_in_sdk_order() {
        assert_eq!(
            error_fields(br#"{"error":{"code":"rate_limited","message":"slow down"}}"#, 429),
            (Some("rate_limited".into()), "slow down".into())
        );
        assert_eq!(
            error_fields(br#"{"error":"No active channel available"}"#, 503).1,
            "No active channel available"
        );
        assert_eq!(
            error_fields(b"<html>oops</html>", 502).1,
            "the service answered HTTP 502"
        );
    }
}
