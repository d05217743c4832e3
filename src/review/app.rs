//! The review app's server: one page (`page.html`), a small JSON API and the run's own videos.
//! Every rating, pick, note and vote is appended to `reviews.jsonl` (fsynced) before it is
//! answered, and every read of the state reads that file again, so a reload, a second tab or a
//! second reviewer's process all see the same records.
//!
//! Safe by default: it listens on loopback unless told otherwise; a change needs the app's random
//! token in a header (`x-review-token`: a page elsewhere cannot send it), and off loopback every
//! request needs it too (the page's address carries it as `?token=`). A video is served only by
//! its clip's id, from the path the run recorded, inside the run folder — no path from a request
//! reaches the disk.

use super::clips::{Clip, Grid};
use super::records::{ReviewLog, ReviewRecord, Reviews, Winner};
use super::scores::{ClipScore, ValueScore, clip_scores, value_scores};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

const PAGE: &str = include_str!("page.html");

/// Writes results.csv, report.html (with the reviews' columns) and review.csv; says where.
pub type Export = Box<dyn Fn() -> Result<String, String> + Send + Sync>;

pub struct App {
    dir: PathBuf,
    clips: Vec<Clip>,
    grid: Grid,
    index: HashMap<String, usize>,
    reviewer: String,
    token: String,
    /// Listening off loopback: every request needs the token.
    public: bool,
    log: Mutex<ReviewLog>,
    rng: Mutex<crate::util::rng::Rng>,
    export: Export,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("dir", &self.dir)
            .field("clips", &self.clips.len())
            .finish_non_exhaustive()
    }
}

/// What the app is made from.
pub struct AppParts {
    pub dir: PathBuf,
    pub clips: Vec<Clip>,
    pub grid: Grid,
    pub reviewer: String,
    pub token: String,
    pub public: bool,
    pub log: ReviewLog,
    pub export: Export,
}

impl App {
    pub fn new(parts: AppParts) -> Arc<App> {
        let index = parts.clips.iter().enumerate().map(|(i, c)| (c.id.clone(), i)).collect();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(7, |d| d.as_nanos() as u64);
        Arc::new(App {
            dir: parts.dir,
            clips: parts.clips,
            grid: parts.grid,
            index,
            reviewer: parts.reviewer,
            token: parts.token,
            public: parts.public,
            log: Mutex::new(parts.log),
            rng: Mutex::new(crate::util::rng::Rng::new(seed)),
            export: parts.export,
        })
    }

    pub fn router(self: &Arc<App>) -> axum::Router {
        axum::Router::new()
            .route("/", get(page))
            .route("/api/state", get(state))
            .route("/api/pair", get(pair))
            .route("/api/review", post(review))
            .route("/api/vote", post(vote))
            .route("/api/export", post(export))
            .route("/v/{id}", get(video))
            .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
            .with_state(Arc::clone(self))
    }

    /// The address to open: the page, with the token (which off loopback every request needs).
    pub fn address(&self, bound: std::net::SocketAddr) -> String {
        format!("http://{bound}/?token={}", self.token)
    }

    /// Reads may go without the token on loopback; changes never do.
    fn allowed(&self, headers: &HeaderMap, query: &TokenQuery, change: bool) -> bool {
        // On loopback, only requests addressed to loopback (a page elsewhere that rebinds its own
        // name to 127.0.0.1 is refused).
        if !self.public && !crate::util::net::loopback_host(headers.get(header::HOST).and_then(|v| v.to_str().ok())) {
            return false;
        }
        let in_header = headers
            .get("x-review-token")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| same(t, &self.token));
        if change {
            return in_header;
        }
        in_header || !self.public || query.token.as_deref().is_some_and(|t| same(t, &self.token))
    }

    fn reviews(&self) -> Result<Reviews, Response> {
        super::records::read(&self.dir).map_err(|e| problem(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))
    }

    fn append(&self, records: &[ReviewRecord]) -> Result<(), Response> {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.append(records)
            .map_err(|e| problem(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))
    }

    fn clip(&self, id: &str) -> Option<&Clip> {
        self.index.get(id).map(|i| &self.clips[*i])
    }

    fn scores(&self, reviews: &Reviews) -> (BTreeMap<String, ClipScore>, Vec<ValueScore>) {
        let params: HashMap<String, BTreeMap<String, String>> =
            self.clips.iter().map(|c| (c.id.clone(), c.params.clone())).collect();
        (clip_scores(&reviews.votes), value_scores(&reviews.votes, &params))
    }
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn problem(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn unauthorized() -> Response {
    problem(
        StatusCode::UNAUTHORIZED,
        "this review app needs its token: open the address it printed",
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

async fn page(State(app): State<Arc<App>>, headers: HeaderMap, Query(query): Query<TokenQuery>) -> Response {
    if !app.allowed(&headers, &query, false) {
        return unauthorized();
    }
    // The token goes into the page for its own requests (a page elsewhere cannot read it).
    let html = PAGE.replace("__TOKEN__", &app.token);
    let mut response = html.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; media-src 'self'; connect-src 'self'",
        ),
    );
    response
}

#[derive(Serialize)]
struct ClipView<'a> {
    #[serde(flatten)]
    clip: &'a Clip,
    video: Option<String>,
    mine: Mine,
    mean: Option<f64>,
    ratings: usize,
    picked: bool,
    wins: u32,
    losses: u32,
    ties: u32,
    score: Option<f64>,
}

#[derive(Serialize, Default)]
struct Mine {
    rating: Option<u8>,
    picked: bool,
    note: String,
}

async fn state(State(app): State<Arc<App>>, headers: HeaderMap, Query(query): Query<TokenQuery>) -> Response {
    if !app.allowed(&headers, &query, false) {
        return unauthorized();
    }
    let reviews = match app.reviews() {
        Ok(r) => r,
        Err(e) => return e,
    };
    let (clip_scores, values) = app.scores(&reviews);
    let none = ClipScore::default();
    let clips: Vec<ClipView<'_>> = app
        .clips
        .iter()
        .map(|clip| {
            let review = reviews.clip(&clip.id);
            let score = clip_scores.get(&clip.id).unwrap_or(&none);
            ClipView {
                clip,
                video: clip.video.as_ref().map(|_| format!("/v/{}", clip.id)),
                mine: review.map_or_else(Mine::default, |r| Mine {
                    rating: r.ratings.get(&app.reviewer).copied(),
                    picked: r.picks.get(&app.reviewer).copied().unwrap_or(false),
                    note: r.notes.get(&app.reviewer).cloned().unwrap_or_default(),
                }),
                mean: review.and_then(super::records::ClipReview::mean_rating),
                ratings: review.map_or(0, |r| r.ratings.len()),
                picked: review.is_some_and(super::records::ClipReview::picked),
                wins: score.wins,
                losses: score.losses,
                ties: score.ties,
                score: score.score,
            }
        })
        .collect();
    let values: Vec<serde_json::Value> = values
        .iter()
        .map(|v| {
            json!({
                "parameter": v.parameter, "value": v.value, "comparisons": v.comparisons,
                "wins": v.wins, "win_rate": v.win_rate, "low": v.low, "high": v.high,
            })
        })
        .collect();
    Json(json!({
        "reviewer": app.reviewer,
        "grid": app.grid,
        "clips": clips,
        "values": values,
        "votes": reviews.votes.len(),
        "records": reviews.records,
        "damaged": reviews.damaged,
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
struct ReviewBody {
    job: String,
    /// A rating 1–5, or null to take it back; absent: unchanged.
    #[serde(default, deserialize_with = "some")]
    rating: Option<Option<u8>>,
    picked: Option<bool>,
    note: Option<String>,
}

/// A present field (even `null`) is `Some`.
fn some<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u8>>, D::Error> {
    Option::<u8>::deserialize(d).map(Some)
}

async fn review(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
    Json(body): Json<ReviewBody>,
) -> Response {
    if !app.allowed(&headers, &query, true) {
        return unauthorized();
    }
    if app.clip(&body.job).is_none() {
        return problem(StatusCode::NOT_FOUND, "no such clip in this run");
    }
    let at = crate::util::time_format::now();
    let reviewer = app.reviewer.clone();
    let mut records = Vec::new();
    if let Some(rating) = body.rating {
        if rating.is_some_and(|r| !(1..=5).contains(&r)) {
            return problem(StatusCode::BAD_REQUEST, "a rating is 1 to 5 (or null to take it back)");
        }
        records.push(ReviewRecord::Rating {
            job: body.job.clone(),
            rating,
            reviewer: reviewer.clone(),
            at: at.clone(),
        });
    }
    if let Some(picked) = body.picked {
        records.push(ReviewRecord::Pick {
            job: body.job.clone(),
            picked,
            reviewer: reviewer.clone(),
            at: at.clone(),
        });
    }
    if let Some(note) = body.note {
        if note.len() > 10_000 {
            return problem(StatusCode::BAD_REQUEST, "a note is at most 10,000 bytes");
        }
        records.push(ReviewRecord::Note {
            job: body.job.clone(),
            note,
            reviewer,
            at,
        });
    }
    if let Err(e) = app.append(&records) {
        return e;
    }
    Json(json!({ "recorded": records.len() })).into_response()
}

#[derive(Debug, Deserialize)]
struct PairQuery {
    /// The parameter both clips share (default: the prompt).
    by: Option<String>,
    token: Option<String>,
}

/// Two completed clips that share the value of `by`, the least compared first, sides at random.
/// Only their ids and videos: the parameters are shown after the vote.
async fn pair(State(app): State<Arc<App>>, headers: HeaderMap, Query(query): Query<PairQuery>) -> Response {
    let token = TokenQuery {
        token: query.token.clone(),
    };
    if !app.allowed(&headers, &token, false) {
        return unauthorized();
    }
    let reviews = match app.reviews() {
        Ok(r) => r,
        Err(e) => return e,
    };
    let by = query.by.as_deref().unwrap_or("prompt");
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, clip) in app.clips.iter().enumerate() {
        if let (Some(_), Some(value)) = (&clip.video, clip.params.get(by)) {
            groups.entry(value.as_str()).or_default().push(i);
        }
    }
    groups.retain(|_, members| members.len() >= 2);
    if groups.is_empty() {
        return problem(
            StatusCode::NOT_FOUND,
            &format!("no two finished clips share a value of `{by}`"),
        );
    }
    let mut times: HashMap<&str, u32> = HashMap::new();
    let mut met: HashMap<(&str, &str), u32> = HashMap::new();
    for v in &reviews.votes {
        *times.entry(v.left.as_str()).or_default() += 1;
        *times.entry(v.right.as_str()).or_default() += 1;
        let key = if v.left < v.right {
            (v.left.as_str(), v.right.as_str())
        } else {
            (v.right.as_str(), v.left.as_str())
        };
        *met.entry(key).or_default() += 1;
    }
    let mut rng = app.rng.lock().unwrap_or_else(|e| e.into_inner());
    // The least compared clip of all that have a partner, ties broken at random; then its least
    // met partner in its group.
    let count = |i: usize| times.get(app.clips[i].id.as_str()).copied().unwrap_or(0);
    let candidates: Vec<(usize, &Vec<usize>)> = groups
        .values()
        .flat_map(|members| members.iter().map(move |i| (*i, members)))
        .collect();
    let fewest = candidates.iter().map(|(i, _)| count(*i)).min().unwrap_or(0);
    let first: Vec<&(usize, &Vec<usize>)> = candidates.iter().filter(|(i, _)| count(*i) == fewest).collect();
    let (a, members) = *first[(rng.next_u64() % first.len() as u64) as usize];
    let a_id = app.clips[a].id.as_str();
    let met_with = |b: usize| {
        let b_id = app.clips[b].id.as_str();
        let key = if a_id < b_id { (a_id, b_id) } else { (b_id, a_id) };
        met.get(&key).copied().unwrap_or(0)
    };
    let others: Vec<usize> = members.iter().copied().filter(|b| *b != a).collect();
    let least = others.iter().map(|b| met_with(*b)).min().unwrap_or(0);
    let partners: Vec<usize> = others.into_iter().filter(|b| met_with(*b) == least).collect();
    let b = partners[(rng.next_u64() % partners.len() as u64) as usize];
    let (left, right) = if rng.chance(0.5) { (a, b) } else { (b, a) };
    let side = |i: usize| json!({ "id": app.clips[i].id, "video": format!("/v/{}", app.clips[i].id) });
    Json(json!({ "by": by, "left": side(left), "right": side(right) })).into_response()
}

#[derive(Debug, Deserialize)]
struct VoteBody {
    left: String,
    right: String,
    winner: Winner,
    /// Whether each clip was played through once before the vote.
    played: [bool; 2],
}

async fn vote(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
    Json(body): Json<VoteBody>,
) -> Response {
    if !app.allowed(&headers, &query, true) {
        return unauthorized();
    }
    let (Some(left), Some(right)) = (app.clip(&body.left), app.clip(&body.right)) else {
        return problem(StatusCode::NOT_FOUND, "no such clip in this run");
    };
    if body.left == body.right || left.video.is_none() || right.video.is_none() {
        return problem(StatusCode::BAD_REQUEST, "a vote is between two finished clips");
    }
    if body.played != [true, true] {
        return problem(StatusCode::CONFLICT, "play both clips through once before voting");
    }
    let record = ReviewRecord::Vote {
        left: body.left.clone(),
        right: body.right.clone(),
        winner: body.winner,
        reviewer: app.reviewer.clone(),
        at: crate::util::time_format::now(),
    };
    if let Err(e) = app.append(&[record]) {
        return e;
    }
    // The parameters, hidden until now.
    Json(json!({ "left": left.params, "right": right.params })).into_response()
}

async fn export(State(app): State<Arc<App>>, headers: HeaderMap, Query(query): Query<TokenQuery>) -> Response {
    if !app.allowed(&headers, &query, true) {
        return unauthorized();
    }
    let app = Arc::clone(&app);
    match tokio::task::spawn_blocking(move || (app.export)()).await {
        Ok(Ok(written)) => Json(json!({ "written": written })).into_response(),
        Ok(Err(e)) => problem(StatusCode::CONFLICT, &e),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// A clip's video, by its id: the file the run recorded, inside the run folder, with `Range`.
async fn video(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
) -> Response {
    if !app.allowed(&headers, &query, false) {
        return unauthorized();
    }
    let Some(relative) = app.clip(&id).and_then(|c| c.video.clone()) else {
        return problem(StatusCode::NOT_FOUND, "no such video in this run");
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match super::videos::serve(&app.dir, &relative, range).await {
        Some(response) => response,
        None => problem(StatusCode::NOT_FOUND, "no such video in this run"),
    }
}
