//! The run-setting sections of a YAML manifest: `matrix:`, `repeat:`, `limits:` and `pricing:`.

use super::diagnostic::{Origin, Problem};
use super::locate::{join_index, join_key};
use super::spec::{Limits, Matrix, MatrixEntry, Sourced};
use super::suggest::did_you_mean;
use super::values::{is_request_key, kind_of, parse_endpoint, request_field_names, unknown_key};
use super::yaml::{LIMIT_KEYS, MAX_CONCURRENCY, MAX_RATE, MAX_REPEAT, PRICING_KEYS, Walker, entries};
use crate::kling::MODEL_NAMES;
use crate::kling::pricing::{PriceRule, PriceSource};
use crate::util::money::Money;
use serde_yaml::{Mapping, Value as Y};
use std::num::NonZeroU32;

impl Walker<'_> {
    pub(super) fn matrix(&mut self, map: &Mapping) -> Matrix {
        let mut matrix = Matrix::default();
        for (key, value) in entries(map) {
            let Some(key) = self.key_or_problem(key, "matrix") else {
                continue;
            };
            let at = join_key("matrix", &key);
            match key.as_str() {
                "exclude" | "include" => {
                    let Y::Sequence(items) = value else {
                        self.problem(Problem::new(
                            Origin::yaml(&at),
                            format!("matrix.{key} must be a list of mappings"),
                        ));
                        continue;
                    };
                    for (i, item) in items.iter().enumerate() {
                        let item_path = join_index(&at, i);
                        if let Some(m) = self.expect_mapping(item, &item_path, &format!("each matrix.{key} entry")) {
                            let fields = self.field_map(m, &item_path, &format!("matrix.{key}"));
                            let entry = MatrixEntry {
                                origin: Origin::yaml(&item_path),
                                fields,
                            };
                            if key == "exclude" {
                                matrix.exclude.push(entry)
                            } else {
                                matrix.include.push(entry)
                            }
                        }
                    }
                }
                _ if is_request_key(&key) => {
                    let Y::Sequence(items) = value else {
                        self.problem(
                            Problem::new(
                                Origin::yaml(&at),
                                format!("matrix.{key} must be a list of values, found {}", kind_of(value)),
                            )
                            .hint(format!(
                                "write `{key}: [a, b]`; a single value belongs under `defaults:`"
                            )),
                        );
                        continue;
                    };
                    if items.is_empty() {
                        self.problem(
                            Problem::new(Origin::yaml(&at), format!("matrix.{key} has no values"))
                                .hint("give at least one value"),
                        );
                        continue;
                    }
                    let mut values = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        let item_path = join_index(&at, i);
                        if let Some(v) = self.field_value(&key, item, &item_path, "matrix") {
                            values.push(Sourced {
                                value: v,
                                origin: Origin::yaml(&item_path),
                            });
                        }
                    }
                    matrix.axes.push((key, values));
                }
                _ => {
                    let candidates = request_field_names().chain(["exclude", "include"]);
                    self.problem(unknown_key(
                        Origin::yaml_key(&at),
                        "a request field or `exclude`/`include` (in matrix)",
                        &key,
                        candidates,
                    ));
                }
            }
        }
        for entry in &matrix.exclude {
            for (key, value) in &entry.fields {
                if !matrix.axes.iter().any(|(axis, _)| axis == key) {
                    let axes: Vec<&str> = matrix.axes.iter().map(|(a, _)| a.as_str()).collect();
                    self.problems.push(
                        unknown_key(
                            value.origin.clone(),
                            "an axis of the matrix (in matrix.exclude)",
                            key,
                            axes.iter().copied(),
                        )
                        .hint("exclude entries match combinations by the matrix's own keys, as in GitHub Actions"),
                    );
                }
            }
        }
        matrix
    }

    pub(super) fn repeat(&mut self, value: &Y) -> Option<NonZeroU32> {
        match value.as_u64() {
            Some(n) if (1..=MAX_REPEAT).contains(&n) => NonZeroU32::new(n as u32),
            _ => {
                self.problem(Problem::new(
                    Origin::yaml("repeat"),
                    format!("repeat must be a whole number from 1 to {MAX_REPEAT}"),
                ));
                None
            }
        }
    }

    pub(super) fn limits(&mut self, map: &Mapping) -> Limits {
        let mut limits = Limits::default();
        for (key, value) in entries(map) {
            let Some(key) = self.key_or_problem(key, "limits") else {
                continue;
            };
            let at = join_key("limits", &key);
            match key.as_str() {
                "max_spend_usd" => match value.as_f64().and_then(Money::from_usd_f64) {
                    Some(m) if m > Money::ZERO => limits.max_spend = Some(m),
                    _ => self.problem(
                        Problem::new(
                            Origin::yaml(&at),
                            "max_spend_usd must be a positive number of US dollars",
                        )
                        .hint("for example `max_spend_usd: 25`"),
                    ),
                },
                "concurrency" => match value.as_u64() {
                    Some(n) if (1..=MAX_CONCURRENCY).contains(&n) => limits.concurrency = NonZeroU32::new(n as u32),
                    _ => self.problem(Problem::new(
                        Origin::yaml(&at),
                        format!("concurrency must be a whole number from 1 to {MAX_CONCURRENCY}"),
                    )),
                },
                "rate_per_second" => match value.as_f64() {
                    Some(r) if r.is_finite() && r > 0.0 && r <= MAX_RATE => limits.rate_per_second = Some(r),
                    _ => self.problem(Problem::new(
                        Origin::yaml(&at),
                        format!("rate_per_second must be a number above 0 and at most {MAX_RATE}"),
                    )),
                },
                other => self.problem(unknown_key(
                    Origin::yaml_key(&at),
                    "a limit",
                    other,
                    LIMIT_KEYS.iter().copied(),
                )),
            }
        }
        limits
    }

    pub(super) fn pricing(&mut self, value: &Y) -> Vec<PriceRule> {
        let Y::Sequence(items) = value else {
            self.problem(
                Problem::new(Origin::yaml("pricing"), "pricing must be a list of price entries")
                    .hint("for example `- { model: kling-3.0, output_resolution: 1080p, cents_per_second: 27 }`"),
            );
            return Vec::new();
        };
        let mut rules = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = join_index("pricing", i);
            let Some(map) = self.expect_mapping(item, &path, "a pricing entry") else {
                continue;
            };
            let mut rule = PriceRule {
                endpoint: None,
                model: None,
                output_resolution: None,
                enable_sound: None,
                per_second: Money::ZERO,
                source: PriceSource::Manifest,
            };
            let mut has_price = false;
            for (key, value) in entries(map) {
                let Some(key) = self.key_or_problem(key, &path) else {
                    continue;
                };
                let at = join_key(&path, &key);
                let origin = Origin::yaml(&at);
                match (key.as_str(), value) {
                    ("model", Y::String(m)) => {
                        if !MODEL_NAMES.contains(&m.as_str()) {
                            self.problem(Problem::new(origin, format!("unknown model `{m}`")).maybe_hint(
                                did_you_mean(m, MODEL_NAMES.iter().copied()).map(|s| format!("did you mean `{s}`?")),
                            ));
                        }
                        rule.model = Some(m.clone());
                    }
                    ("endpoint", Y::String(e)) => match parse_endpoint(e, &origin) {
                        Ok(e) => rule.endpoint = Some(e),
                        Err(p) => self.problem(p),
                    },
                    ("output_resolution", Y::String(r)) => rule.output_resolution = Some(r.clone()),
                    ("enable_sound", Y::Bool(b)) => rule.enable_sound = Some(*b),
                    ("cents_per_second", v) => match v.as_f64().and_then(Money::from_cents_f64) {
                        Some(m) => {
                            rule.per_second = m;
                            has_price = true;
                        }
                        None => self.problem(Problem::new(
                            origin,
                            "cents_per_second must be a number of cents, 0 or more",
                        )),
                    },
                    (known, other) if PRICING_KEYS.contains(&known) => self.problem(Problem::new(
                        origin,
                        format!("pricing {known} has the wrong type ({})", kind_of(other)),
                    )),
                    (unknown, _) => self.problem(unknown_key(
                        Origin::yaml_key(&at),
                        "a pricing key",
                        unknown,
                        PRICING_KEYS.iter().copied(),
                    )),
                }
            }
            if !has_price {
                self.problem(Problem::new(
                    Origin::yaml(&path),
                    "a pricing entry needs cents_per_second",
                ));
            }
            if rule.model.is_none() && rule.endpoint.is_none() {
                self.problem(
                    Problem::new(Origin::yaml(&path), "a pricing entry needs a model (or an endpoint)")
                        .hint("an entry without either would price every job the same"),
                );
            }
            rules.push(rule);
        }
        rules
    }
}
