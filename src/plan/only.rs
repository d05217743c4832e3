//! `only:` on a step: which parents it runs for, by what reviewers said of them (`kling-batch
//! review`) — `only: picked`, `only: "rating >= 4"`, `only: "top 2 per prompt"` (by score, then
//! rating). The manifest plans the step for every parent; a run (and `plan --out DIR`, `status`,
//! `report`) then keeps the children of the parents its reviews select, and every child already
//! begun (a rerun after more reviews adds the new ones and leaves the earlier ones alone).

use super::Plan;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The rule of one step's `only:`.
#[derive(Debug, Clone, PartialEq)]
pub enum Only {
    /// Picked by a reviewer.
    Picked,
    /// Its mean rating compared with `value`.
    Rating { op: Compare, value: f64 },
    /// The best `n` of each group of parents sharing a value of `per` (the prompt's text for
    /// `prompt`), by score from blind votes, then mean rating; only reviewed clips count.
    Top { n: usize, per: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    AtLeast,
    Above,
    Equal,
    AtMost,
    Below,
}

impl Compare {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Compare::AtLeast => a >= b,
            Compare::Above => a > b,
            Compare::Equal => (a - b).abs() < 1e-9,
            Compare::AtMost => a <= b,
            Compare::Below => a < b,
        }
    }
}

/// What reviewers said of a parent.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Judged {
    pub picked: bool,
    /// Mean rating, 1–5.
    pub rating: Option<f64>,
    /// Bradley–Terry score from blind votes.
    pub score: Option<f64>,
}

/// A step entry's rule, as planned.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The step's prompt entry (0-based).
    pub entry: usize,
    pub rule: Only,
    /// As written, for messages.
    pub text: String,
}

/// `only:` as written, read; the error says what is accepted.
pub(super) fn parse(text: &str) -> Result<Only, String> {
    let words: Vec<String> = text.split_whitespace().map(str::to_ascii_lowercase).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let number = |w: &str| w.parse::<f64>().ok().filter(|v| v.is_finite());
    match words.as_slice() {
        ["picked"] => Ok(Only::Picked),
        ["rating", op, value] => {
            let op = match *op {
                ">=" => Compare::AtLeast,
                ">" => Compare::Above,
                "=" | "==" => Compare::Equal,
                "<=" => Compare::AtMost,
                "<" => Compare::Below,
                _ => return Err(format!("`{op}` is not a comparison (>=, >, =, <=, <)")),
            };
            match number(value) {
                Some(v) if (1.0..=5.0).contains(&v) => Ok(Only::Rating { op, value: v }),
                _ => Err(format!("`{value}` is not a rating from 1 to 5")),
            }
        }
        ["top", n, "per", per] => match n.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(Only::Top {
                n,
                per: (*per).to_string(),
            }),
            _ => Err(format!("`{n}` is not a number of clips (1 or more)")),
        },
        ["top", n] => match n.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(Only::Top {
                n,
                per: "prompt".to_string(),
            }),
            _ => Err(format!("`{n}` is not a number of clips (1 or more)")),
        },
        _ => Err(format!("`{text}` is not a choice of parents")),
    }
}

/// Why a parent was (or was not) chosen, for `plan`.
#[derive(Debug, Clone, PartialEq)]
pub struct Chosen {
    /// The step's `only:` as written, and its entry's label.
    pub rule: String,
    pub step: String,
    /// Parent job ids chosen now, each with why.
    pub parents: Vec<(String, String)>,
    /// Children kept because they were begun before (their parent is no longer chosen).
    pub kept: Vec<String>,
    /// Parents not (or not yet) chosen.
    pub left_out: usize,
}

impl Plan {
    /// Keeps, of every step with `only:`, the children of the parents `judged` selects and those
    /// `begun` already holds; a dropped job's own steps go too. Returns what was chosen.
    pub fn choose(&mut self, judged: &dyn Fn(&str) -> Option<Judged>, begun: &HashSet<String>) -> Vec<Chosen> {
        if self.choices.is_empty() {
            return Vec::new();
        }
        let rules: HashMap<usize, &Choice> = self.choices.iter().map(|c| (c.entry, c)).collect();
        // The parents each rule selects, with why.
        let mut selected: HashMap<usize, BTreeMap<usize, String>> = HashMap::new();
        for (&entry, choice) in &rules {
            let parents: Vec<usize> = {
                let mut p: Vec<usize> = self
                    .jobs
                    .iter()
                    .filter(|j| j.prompt_index == entry)
                    .filter_map(|j| j.parent)
                    .collect();
                p.sort_unstable();
                p.dedup();
                p
            };
            selected.insert(entry, self.select(&choice.rule, &parents, judged));
        }
        let mut keep = vec![true; self.jobs.len()];
        let mut chosen: BTreeMap<usize, Chosen> = BTreeMap::new();
        for i in 0..self.jobs.len() {
            let job = &self.jobs[i];
            // A step comes after its parent: a dropped parent is known here.
            if let Some(p) = job.parent
                && !keep[p]
            {
                keep[i] = false;
                continue;
            }
            let (Some(choice), Some(parent)) = (rules.get(&job.prompt_index), job.parent) else {
                continue;
            };
            let record = chosen.entry(choice.entry).or_insert_with(|| Chosen {
                rule: choice.text.clone(),
                step: job.label.to_string(),
                parents: Vec::new(),
                kept: Vec::new(),
                left_out: 0,
            });
            let why = selected.get(&choice.entry).and_then(|s| s.get(&parent));
            match why {
                Some(why) => {
                    let id = self.jobs[parent].id.to_string();
                    if !record.parents.iter().any(|(p, _)| *p == id) {
                        record.parents.push((id, why.clone()));
                    }
                }
                None if begun.contains(job.id.as_str()) => record.kept.push(job.id.to_string()),
                None => keep[i] = false,
            }
        }
        for (entry, record) in chosen.iter_mut() {
            let parents = selected.get(entry).map_or(0, BTreeMap::len);
            let all: HashSet<usize> = self
                .jobs
                .iter()
                .filter(|j| j.prompt_index == *entry)
                .filter_map(|j| j.parent)
                .collect();
            record.left_out = all.len().saturating_sub(parents);
        }
        self.retain_jobs(&keep);
        chosen.into_values().collect()
    }

    /// The parents of `parents` that `rule` selects, each with why.
    fn select(
        &self,
        rule: &Only,
        parents: &[usize],
        judged: &dyn Fn(&str) -> Option<Judged>,
    ) -> BTreeMap<usize, String> {
        let of = |p: usize| judged(self.jobs[p].id.as_str()).unwrap_or_default();
        match rule {
            Only::Picked => parents
                .iter()
                .filter(|p| of(**p).picked)
                .map(|p| (*p, "picked".to_string()))
                .collect(),
            Only::Rating { op, value } => parents
                .iter()
                .filter_map(|p| {
                    let r = of(*p).rating?;
                    op.holds(r, *value).then(|| (*p, format!("rated {r:.1}")))
                })
                .collect(),
            Only::Top { n, per } => {
                let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
                for p in parents {
                    let spec = &self.jobs[*p];
                    let key = match per.as_str() {
                        "prompt" => spec.prompt().unwrap_or_default(),
                        other => spec.params.get(other).map(|v| v.to_string()).unwrap_or_default(),
                    };
                    groups.entry(key).or_default().push(*p);
                }
                let mut out = BTreeMap::new();
                for members in groups.values() {
                    let mut ranked: Vec<(usize, Judged)> = members
                        .iter()
                        .map(|p| (*p, of(*p)))
                        .filter(|(_, j)| j.score.is_some() || j.rating.is_some())
                        .collect();
                    ranked.sort_by(|a, b| {
                        let key = |j: &Judged| (j.score.unwrap_or(f64::NEG_INFINITY), j.rating.unwrap_or(0.0));
                        let (ka, kb) = (key(&a.1), key(&b.1));
                        kb.0.total_cmp(&ka.0).then(kb.1.total_cmp(&ka.1)).then(a.0.cmp(&b.0))
                    });
                    for (place, (p, j)) in ranked.into_iter().take(*n).enumerate() {
                        let by = match (j.score, j.rating) {
                            (Some(s), _) => format!("score {s:.2}"),
                            (None, Some(r)) => format!("rated {r:.1}"),
                            _ => String::new(),
                        };
                        out.insert(p, format!("top {} per {per} ({by})", place + 1));
                    }
                }
                out
            }
        }
    }

    /// Keeps the jobs marked `keep`, renumbering parents.
    fn retain_jobs(&mut self, keep: &[bool]) {
        if keep.iter().all(|k| *k) {
            return;
        }
        let mut new_index = vec![None; self.jobs.len()];
        let mut next = 0;
        for (i, k) in keep.iter().enumerate() {
            if *k {
                new_index[i] = Some(next);
                next += 1;
            }
        }
        let jobs = std::mem::take(&mut self.jobs);
        self.jobs = jobs
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep[*i])
            .map(|(_, mut j)| {
                j.parent = j.parent.and_then(|p| new_index[p]);
                j
            })
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_as_written_and_bad_ones_say_what_is_accepted() {
        assert_eq!(parse("picked"), Ok(Only::Picked));
        assert_eq!(
            parse("rating >= 4"),
            Ok(Only::Rating {
                op: Compare::AtLeast,
                value: 4.0
            })
        );
        assert_eq!(
            parse("top 2 per prompt"),
            Ok(Only::Top {
                n: 2,
                per: "prompt".into()
            })
        );
        assert!(parse("rating >= 9").unwrap_err().contains("from 1 to 5"));
        assert!(parse("rating ~ 3").unwrap_err().contains("comparison"));
        assert!(parse("top 0 per prompt").unwrap_err().contains("1 or more"));
        assert!(parse("best ones").unwrap_err().contains("not a choice"));
    }
}
