//! Prices in cents per second of video, by endpoint, model, resolution and sound, and the cost
//! estimate of one request. The built-in table is the snapshot in contract §8; models the snapshot
//! lacks carry an explicitly *assumed* price, and a manifest's `pricing:` entries override both.
//! The simulator bills from this same table, so plans, caps and bills agree in tests.

use crate::kling::{Endpoint, model_spec};
use crate::util::money::Money;
use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceSource {
    /// RunAPI's published snapshot (contract §8).
    Snapshot,
    /// Not in the snapshot: a placeholder modelled on the nearest published model.
    Assumed,
    /// The manifest's `pricing:` section.
    Manifest,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PriceRule {
    pub endpoint: Option<Endpoint>,
    pub model: Option<String>,
    pub output_resolution: Option<String>,
    pub enable_sound: Option<bool>,
    pub per_second: Money,
    pub source: PriceSource,
}

impl PriceRule {
    fn specificity(&self) -> usize {
        [
            self.endpoint.is_some(),
            self.model.is_some(),
            self.output_resolution.is_some(),
            self.enable_sound.is_some(),
        ]
        .into_iter()
        .filter(|b| *b)
        .count()
    }

    fn matches(&self, endpoint: Endpoint, shape: &PricedShape) -> bool {
        self.endpoint.is_none_or(|e| e == endpoint)
            && self.model.as_deref().is_none_or(|m| Some(m) == shape.model.as_deref())
            && self
                .output_resolution
                .as_deref()
                .is_none_or(|r| Some(r) == shape.output_resolution.as_deref())
            && self.enable_sound.is_none_or(|s| s == shape.enable_sound)
    }
}

/// The fields of a request that decide its price, with the model's documented defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PricedShape {
    pub endpoint: Endpoint,
    pub model: Option<String>,
    pub output_resolution: Option<String>,
    pub enable_sound: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    /// Seconds of video the request will produce (or is assumed to).
    pub seconds: u32,
    /// True when the request does not say its length (motion control, avatars, extensions).
    pub seconds_assumed: bool,
    pub per_second: Money,
    pub cost: Money,
    pub price_source: PriceSource,
}

#[derive(Debug, Clone)]
pub(crate) struct PriceTable {
    rules: Vec<PriceRule>,
}

fn rule(
    endpoint: Option<Endpoint>,
    model: &str,
    res: Option<&str>,
    sound: Option<bool>,
    cents: f64,
    source: PriceSource,
) -> PriceRule {
    PriceRule {
        endpoint,
        model: Some(model.to_string()),
        output_resolution: res.map(str::to_string),
        enable_sound: sound,
        per_second: Money::from_cents_f64(cents).unwrap_or(Money::ZERO),
        source,
    }
}

impl PriceTable {
    /// The built-in table: the §8 snapshot, then assumptions for the models it lacks.
    pub(crate) fn builtin() -> PriceTable {
        use Endpoint::*;
        use PriceSource::{Assumed, Snapshot};
        let mut rules = Vec::new();
        // kling-3.0 text_to_video keyed by sound and resolution; kling-v3-omni* priced alike (assumed).
        for (model, endpoint, source) in [
            ("kling-3.0", Some(TextToVideo), Snapshot),
            ("kling-v3-omni", None, Assumed),
            ("kling-v3-omni-reference", None, Assumed),
            ("kling-v3-omni-edit", None, Assumed),
        ] {
            for (sound, table) in [(false, [14.0, 18.0, 67.0]), (true, [20.0, 27.0, 67.0])] {
                for (res, cents) in ["720p", "1080p", "4k"].into_iter().zip(table) {
                    rules.push(rule(endpoint, model, Some(res), Some(sound), cents, source));
                }
            }
        }
        rules.push(rule(
            Some(MotionControl),
            "kling-3.0",
            Some("720p"),
            None,
            20.0,
            Snapshot,
        ));
        rules.push(rule(
            Some(MotionControl),
            "kling-3.0",
            Some("1080p"),
            None,
            27.0,
            Snapshot,
        ));
        for (model, cents) in [
            ("kling-ai-avatar-pro", 16.0),
            ("kling-ai-avatar-standard", 8.0),
            ("kling-ai-avatar-v1-pro", 16.0),
            ("kling-v1-avatar-standard", 8.0),
            ("kling-v2.1-pro", 10.0),
            ("kling-v2.1-standard", 5.0),
            ("kling-v2.1-master-text-to-video", 32.0),
            ("kling-v2.1-master-image-to-video", 32.0),
            ("kling-v2.5-turbo-text-to-video-pro", 9.0),
            ("kling-v2.5-turbo-image-to-video-pro", 9.0),
        ] {
            rules.push(rule(None, model, None, None, cents, Snapshot));
        }
        for model in ["kling-v3-turbo-text-to-video", "kling-v3-turbo-image-to-video"] {
            rules.push(rule(None, model, Some("720p"), None, 18.0, Snapshot));
            rules.push(rule(None, model, Some("1080p"), None, 22.5, Snapshot));
        }
        // Assumed: modelled on kling-3.0 at 720p (v2.6, o1) and v2.5-turbo (extensions).
        rules.push(rule(
            Some(MotionControl),
            "kling-v2.6",
            Some("720p"),
            None,
            20.0,
            Assumed,
        ));
        rules.push(rule(
            Some(MotionControl),
            "kling-v2.6",
            Some("1080p"),
            None,
            27.0,
            Assumed,
        ));
        rules.push(rule(None, "kling-v2.6", None, Some(false), 14.0, Assumed));
        rules.push(rule(None, "kling-v2.6", None, Some(true), 20.0, Assumed));
        rules.push(rule(None, "kling-o1", None, None, 14.0, Assumed));
        rules.push(PriceRule {
            endpoint: Some(ExtendVideo),
            model: None,
            output_resolution: None,
            enable_sound: None,
            per_second: Money::from_cents(9),
            source: Assumed,
        });
        PriceTable { rules }
    }

    /// The built-in table under the manifest's own rules (which always win).
    pub(crate) fn with_overrides(overrides: Vec<PriceRule>) -> PriceTable {
        let mut table = PriceTable::builtin();
        let mut rules = overrides;
        rules.append(&mut table.rules);
        table.rules = rules;
        table
    }

    /// The most specific rule of the highest-priority source that matches.
    pub(crate) fn lookup(&self, shape: &PricedShape) -> Option<&PriceRule> {
        let matching = |source: PriceSource| {
            self.rules
                .iter()
                .filter(move |r| (r.source == PriceSource::Manifest) == (source == PriceSource::Manifest))
                .filter(|r| r.matches(shape.endpoint, shape))
                .max_by_key(|r| r.specificity())
        };
        matching(PriceSource::Manifest).or_else(|| matching(PriceSource::Snapshot))
    }

    pub(crate) fn estimate(&self, endpoint: Endpoint, request: &Map<String, Value>) -> Estimate {
        let rate = self.rate(&priced_shape(endpoint, request));
        Estimate::at(rate, video_seconds(endpoint, request))
    }

    /// Price per second and its source for a shape (what `estimate` looks up; the planner keeps
    /// it per distinct shape).
    pub(crate) fn rate(&self, shape: &PricedShape) -> (Money, PriceSource) {
        match self.lookup(shape) {
            Some(rule) => (rule.per_second, rule.source),
            // Unreachable for validated requests (every model has a rule); priced as the dearest
            // published rate so a spend cap errs on the safe side.
            None => (Money::from_cents(67), PriceSource::Assumed),
        }
    }
}

impl Estimate {
    /// `seconds` of video (and whether that length is assumed) at `rate`.
    pub fn at((per_second, price_source): (Money, PriceSource), (seconds, seconds_assumed): (u32, bool)) -> Estimate {
        Estimate {
            seconds,
            seconds_assumed,
            per_second,
            cost: per_second.saturating_mul(u64::from(seconds)),
            price_source,
        }
    }
}

/// What the built-in table alone prices `shape` at, whatever a manifest's `pricing:` says: the
/// floor an estimate shown to someone who did not write the manifest is never below.
pub(crate) fn builtin_rate(shape: &PricedShape) -> (Money, PriceSource) {
    static BUILTIN: std::sync::OnceLock<PriceTable> = std::sync::OnceLock::new();
    BUILTIN.get_or_init(PriceTable::builtin).rate(shape)
}

/// The price-deciding fields of a request, defaults filled in from the model's spec.
pub(crate) fn priced_shape(endpoint: Endpoint, request: &Map<String, Value>) -> PricedShape {
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .filter(|_| endpoint.takes_model());
    let spec = model_spec(endpoint, model);
    let default_str = |field: &str| match spec.and_then(|s| s.default_of(field)) {
        Some(crate::kling::models::Lit::Str(s)) => Some(s.to_string()),
        _ => None,
    };
    let output_resolution = request
        .get("output_resolution")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| default_str("output_resolution"));
    PricedShape {
        endpoint,
        model: model.map(str::to_string),
        output_resolution,
        enable_sound: request.get("enable_sound").and_then(Value::as_bool).unwrap_or(false),
    }
}

/// Seconds of video a request asks for. Endpoints whose length comes from an input file are
/// assumed to produce the longest clip their inputs allow, so estimates and caps err high.
pub(crate) fn video_seconds(endpoint: Endpoint, request: &Map<String, Value>) -> (u32, bool) {
    let int = |field: &str| {
        request
            .get(field)
            .and_then(Value::as_u64)
            .map(|n| n.min(u64::from(u32::MAX)) as u32)
    };
    match endpoint {
        Endpoint::MotionControl => {
            let image = request.get("character_orientation").and_then(Value::as_str) == Some("image");
            (if image { 10 } else { 30 }, true)
        }
        Endpoint::AiAvatar => (30, true),
        Endpoint::ExtendVideo => (5, true),
        _ => {
            if let Some(n) = int("duration_seconds") {
                return (n, false);
            }
            if let Some(shots) = request.get("multi_prompt").and_then(Value::as_array) {
                let total: u64 = shots.iter().filter_map(|s| s.get("duration_seconds")?.as_u64()).sum();
                if total > 0 {
                    return (total.min(u64::from(u32::MAX)) as u32, false);
                }
            }
            (5, false)
        }
    }
}
