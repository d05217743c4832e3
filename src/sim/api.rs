//! The RunAPI routes: create and get for the six Kling actions, account balance, price schedules
//! and quotes — with the contract's error bodies and headers (§3–§5, §7).

use super::shared::{ConnectionControl, Shared, authorize, error_response, signed_url};
use super::state::{CreateRefusal, Read, Status};
use crate::kling::{Endpoint, Strictness, ViolationKind, models_for, validate};
use crate::util::money::Money;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

pub(super) const CREATE_ROUTE: &str = "POST /api/v1/kling/{action}";
const MAX_HEADER_VALUE: usize = 512;

fn endpoint_of(action: &str) -> Result<Endpoint, Response> {
    match action.parse::<Endpoint>() {
        Ok(e) if e.as_str() == action => Ok(e),
        _ => Err(error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("No such action: kling/{action}"),
        )),
    }
}

/// The two checks every Kling route makes first: the key, then the action.
fn authorized_endpoint(shared: &Shared, headers: &HeaderMap, action: &str) -> Result<Endpoint, Response> {
    authorize(shared, headers)?;
    endpoint_of(action)
}

fn header_text(headers: &HeaderMap, name: &str) -> Result<Option<String>, Response> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(text) if text.len() <= MAX_HEADER_VALUE && text.bytes().all(|b| (0x20..0x7f).contains(&b)) => {
            let text = text.trim();
            Ok((!text.is_empty()).then(|| text.to_string()))
        }
        _ => Err(error_response(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("{name} must be printable ASCII of at most {MAX_HEADER_VALUE} characters"),
        )),
    }
}

/// The request as the service checks it: a JSON object, valid for its action and model.
fn checked_body(endpoint: Endpoint, raw: &[u8]) -> Result<Map<String, Value>, Response> {
    let body = match serde_json::from_slice::<Value>(raw) {
        Ok(Value::Object(map)) => map,
        _ => {
            return Err(error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The request body must be a JSON object",
            ));
        }
    };
    let violations = validate(endpoint, &body, Strictness::Server);
    if violations.is_empty() {
        return Ok(body);
    }
    let status = if violations.iter().any(|v| v.kind == ViolationKind::Model) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let message = violations
        .iter()
        .map(|v| v.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let mut response = error_response(status, "validation_error", message);
    let details: Vec<Value> = violations
        .iter()
        .map(|v| json!({"field": v.field, "message": v.message}))
        .collect();
    if let Ok(body) = serde_json::to_vec(
        &json!({"error": {"code": "validation_error", "message": violations[0].message, "details": details}}),
    ) {
        *response.body_mut() = axum::body::Body::from(body);
    }
    Err(response)
}

fn with_task_headers(mut response: Response, task_id: &str, client_request_id: Option<&str>) -> Response {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(task_id) {
        headers.insert("x-runapi-task-id", v);
    }
    if let Some(v) = client_request_id.and_then(|c| HeaderValue::from_str(c).ok()) {
        headers.insert("x-client-request-id", v);
    }
    response
}

pub(super) async fn create(
    State(shared): State<Arc<Shared>>,
    Path(action): Path<String>,
    connection: Option<axum::Extension<ConnectionControl>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let endpoint = match authorized_endpoint(&shared, &headers, &action) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let (key, client) = match (
        header_text(&headers, "idempotency-key"),
        header_text(&headers, "x-client-request-id"),
    ) {
        (Ok(k), Ok(c)) => (k, c),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let body = match checked_body(endpoint, &raw) {
        Ok(b) => b,
        Err(r) => return r,
    };
    // A new create may not name an upload that expired (a resend of a known key replays).
    let replay = key.as_deref().is_some_and(|k| shared.lock().knows_key(k));
    if !replay && let Some(message) = super::uploads::unusable_upload(&shared, &body) {
        shared.lock().counters.creates_with_unusable_upload += 1;
        return error_response(StatusCode::UNPROCESSABLE_ENTITY, "validation_error", message);
    }
    let now = shared.clock.now();
    let result = {
        let mut state = shared.lock();
        state.settle_due(now);
        state.create(endpoint, &body, key.as_deref(), client.as_deref(), now)
    };
    let created = match result {
        Ok(c) => c,
        Err(CreateRefusal::Conflict) => {
            return error_response(
                StatusCode::CONFLICT,
                "request_conflict",
                "This Idempotency-Key was already used with a different request body",
            );
        }
        Err(CreateRefusal::ResendError(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            let (code, message) = match status.as_u16() {
                401 => ("unauthorized", "Invalid API key".to_string()),
                402 => ("insufficient_credits", "Insufficient credits".to_string()),
                409 => ("request_conflict", "Idempotency-Key conflict".to_string()),
                _ => ("validation_error", "The request is not valid".to_string()),
            };
            let message = message + &echoed_key(&shared, &headers).unwrap_or_default();
            return error_response(status, code, message);
        }
        Err(CreateRefusal::Continuation { status, code, message }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            return error_response(status, code, message);
        }
        Err(CreateRefusal::InsufficientCredits { needed, available }) => {
            return error_response(
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_credits",
                format!("Insufficient credits: this task needs {needed}, the balance has {available} available"),
            );
        }
    };
    if created.drop_connection
        && let Some(axum::Extension(control)) = connection
    {
        {
            let mut state = shared.lock();
            state.counters.dropped_connections += 1;
            *state
                .counters
                .requests
                .entry(CREATE_ROUTE.into())
                .or_default()
                .entry("dropped".into())
                .or_default() += 1;
        }
        control.drop_now();
        return std::future::pending().await;
    }
    let task = &created.task;
    let url = (task.status(now) == Status::Completed).then(|| signed_url(&shared, &task.id));
    let mut view = task.view(now, url);
    view["task_replayed"] = json!(created.replayed);
    with_task_headers(Json(view).into_response(), &task.id, client.as_deref())
}

pub(super) async fn get_task(
    State(shared): State<Arc<Shared>>,
    Path((action, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let endpoint = match authorized_endpoint(&shared, &headers, &action) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let now = shared.clock.now();
    let weird = {
        let mut state = shared.lock();
        let rate = state.faults.weird_answer_rate;
        state.draw(rate).then(|| state.pick(5))
    };
    if let Some(kind) = weird {
        shared.lock().counters.weird_answers += 1;
        return weird_answer(kind, &id);
    }
    let task = {
        let mut state = shared.lock();
        state.settle_due(now);
        state.counters.polls += 1;
        state.read_task(&id, endpoint, now)
    };
    let (task, with_url) = match task {
        Read::Found(task) => (task, true),
        Read::Urlless(task) => (task, false),
        Read::Hidden | Read::Missing => {
            return error_response(StatusCode::NOT_FOUND, "not_found", format!("Task {id} was not found"));
        }
    };
    let url = (with_url && task.status(now) == Status::Completed).then(|| signed_url(&shared, &task.id));
    let mut view = task.view(now, url);
    if !with_url && let Value::Object(map) = &mut view {
        map.remove("videos");
    }
    if let Some(Value::String(error)) = view.get_mut("error") {
        if let Some(text) = shared.lock().faults.failure_text.clone() {
            error.push_str(": ");
            error.push_str(&text);
        }
        if let Some(echo) = echoed_key(&shared, &headers) {
            error.push_str(&echo);
        }
    }
    with_task_headers(Json(view).into_response(), &task.id, task.client_request_id.as_deref())
}

/// With the `echo_key` fault: the request's Authorization header, quoted as a careless service
/// quotes it in an error text.
pub(super) fn echoed_key(shared: &Shared, headers: &HeaderMap) -> Option<String> {
    if !shared.lock().faults.echo_key {
        return None;
    }
    let given = headers.get("authorization").and_then(|v| v.to_str().ok())?;
    let form = shared.lock().faults.echo_key_as;
    let given = match form {
        super::config::EchoForm::Verbatim => given.to_string(),
        super::config::EchoForm::Upper => given.to_uppercase(),
        super::config::EchoForm::Hex => crate::util::hex::hex(given.as_bytes()),
    };
    Some(format!(" (request had Authorization: {given})"))
}

/// A status answer a careless or broken service might give.
fn weird_answer(kind: u64, id: &str) -> Response {
    match kind {
        0 => {
            let padding = "x".repeat(2 << 20);
            Json(json!({"id": id, "status": "processing", "padding": padding})).into_response()
        }
        1 => Json(json!({"id": id, "status": "thinking"})).into_response(),
        2 => (StatusCode::OK, "<html><body>ok</body></html>").into_response(),
        3 => Json(json!({"unexpected": true})).into_response(),
        _ => {
            let mut r = error_response(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", "try later");
            r.headers_mut()
                .insert("retry-after", HeaderValue::from_static("soon-ish"));
            r
        }
    }
}

pub(super) async fn me(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if shared.lock().faults.no_account_routes {
        return not_found_route();
    }
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    Json(json!({"id": 1, "name": "Simulator", "email": "sim@localhost", "account": {"id": 1, "name": "Simulated account"}}))
        .into_response()
}

pub(super) async fn balance(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if shared.lock().faults.no_account_routes {
        return not_found_route();
    }
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let now = shared.clock.now();
    let mut state = shared.lock();
    state.settle_due(now);
    let cents = |m: Money| m.micro_cents() / 1_000_000;
    let available = cents(state.available());
    let spent = cents(state.counters.billed);
    Json(json!({
        "balance_cents": available,
        "paid_balance_cents": available,
        "bonus_balance_cents": 0,
        "spent_cents_today": spent,
        "spent_cents_total": spent,
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct ScheduleFilter {
    service: Option<String>,
    action: Option<String>,
    model: Option<String>,
}

pub(super) async fn price_schedules(
    State(shared): State<Arc<Shared>>,
    Query(filter): Query<ScheduleFilter>,
) -> Response {
    let prices = shared.lock().prices().clone();
    let mut schedules = Vec::new();
    if filter.service.as_deref().is_none_or(|s| s == "kling") {
        for endpoint in Endpoint::ALL {
            if filter.action.as_deref().is_some_and(|a| a != endpoint.as_str()) {
                continue;
            }
            let models: Vec<Option<&str>> = if endpoint.takes_model() {
                models_for(endpoint).into_iter().map(Some).collect()
            } else {
                vec![None]
            };
            for model in models {
                if filter.model.is_some() && filter.model.as_deref() != model {
                    continue;
                }
                let mut request = Map::new();
                if let Some(m) = model {
                    request.insert("model".into(), json!(m));
                }
                let estimate = prices.estimate(endpoint, &request);
                schedules.push(json!({
                    "service": "kling",
                    "action": endpoint.as_str(),
                    "model": model,
                    "pricing_status": "available",
                    "catalog_status": "active",
                    "currency": "USD",
                    "billing_unit": "per_second",
                    "billing_strategy": "flat",
                    "unit_price_cents": estimate.per_second.cents(),
                }));
            }
        }
    }
    Json(
        json!({"as_of": crate::util::time_format::rfc3339(std::time::SystemTime::now()), "price_schedules": schedules}),
    )
    .into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct QuoteRequest {
    service: String,
    action: String,
    model: Option<String>,
    #[serde(default)]
    params: Map<String, Value>,
}

pub(super) async fn price_quote(State(shared): State<Arc<Shared>>, raw: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<QuoteRequest>(&raw) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Expected {service, action, model?, params}",
        );
    };
    if request.service != "kling" {
        return error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("No such service: {}", request.service),
        );
    }
    let endpoint = match endpoint_of(&request.action) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let mut params = request.params;
    if let Some(model) = &request.model {
        params.insert("model".into(), json!(model));
    }
    if let Err(r) = checked_body(endpoint, &serde_json::to_vec(&params).unwrap_or_default()) {
        return r;
    }
    let (estimate, factor) = {
        let state = shared.lock();
        (
            state.prices().estimate(endpoint, &params),
            state.faults.quote_factor.max(0.0),
        )
    };
    let quoted_cents = ((estimate.cost.micro_cents() as f64 * factor) as u64).div_ceil(1_000_000);
    Json(json!({"price_quote": {
        "service": "kling",
        "action": endpoint.as_str(),
        "model": params.get("model"),
        "pricing_status": "available",
        "currency": "USD",
        "reservation_amount_cents": quoted_cents,
        "estimate_basis": "exact",
        "as_of": crate::util::time_format::rfc3339(std::time::SystemTime::now()),
    }}))
    .into_response()
}

fn not_found_route() -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", "No such route")
}
