//! What wins: from blind pairwise votes, each clip's wins, losses and Bradley–Terry score, and for
//! each parameter value how often it wins against the other values of that parameter, with a
//! Wilson interval. Pure functions over the votes; ties count half a win to each side.

use super::records::{Vote, Winner};
use std::collections::{BTreeMap, HashMap};

/// A clip's record in the votes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClipScore {
    pub wins: u32,
    pub losses: u32,
    pub ties: u32,
    /// ln of its Bradley–Terry strength, against a reference clip of strength 1 (0: average;
    /// every clip plays one pretend tie against the reference, so a clip with no wins, or one
    /// never compared, still has a finite score). None: never in a vote.
    pub score: Option<f64>,
}

/// How one parameter value fares against the other values of its parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueScore {
    pub parameter: String,
    pub value: String,
    /// Votes between clips that differ in this parameter, one side having this value.
    pub comparisons: u32,
    /// Wins (a tie counts half).
    pub wins: f64,
    pub win_rate: f64,
    /// The 95 % Wilson interval of the win rate.
    pub low: f64,
    pub high: f64,
}

/// Bradley–Terry strengths by Hunter's (2004) MM algorithm. `games[i][j]` is how many times `i`
/// beat `j` (a tie adds half to each). `prior` pretend games against a reference of strength 1,
/// half won, half lost, are added for every player (0: the plain maximum-likelihood estimate,
/// which needs every player to have won and lost). Returns the strengths, the reference at 1 (or,
/// with no prior, their geometric mean at 1).
pub fn bradley_terry(games: &[Vec<f64>], prior: f64) -> Vec<f64> {
    let n = games.len();
    let mut p = vec![1.0; n];
    let wins: Vec<f64> = (0..n).map(|i| games[i].iter().sum::<f64>() + prior / 2.0).collect();
    for _ in 0..10_000 {
        let mut next = vec![0.0; n];
        for i in 0..n {
            let mut denominator = prior / (p[i] + 1.0);
            for j in 0..n {
                let played = games[i][j] + games[j][i];
                if j != i && played > 0.0 {
                    denominator += played / (p[i] + p[j]);
                }
            }
            next[i] = if denominator > 0.0 { wins[i] / denominator } else { 1.0 };
        }
        if prior == 0.0 {
            // Without a reference, strengths are known up to a factor: their geometric mean is 1.
            let positive: Vec<f64> = next.iter().copied().filter(|v| *v > 0.0).collect();
            if !positive.is_empty() {
                let mean = (positive.iter().map(|v| v.ln()).sum::<f64>() / positive.len() as f64).exp();
                next.iter_mut().for_each(|v| *v /= mean);
            }
        }
        let change = p
            .iter()
            .zip(&next)
            .map(|(a, b)| (a - b).abs() / a.max(1e-300))
            .fold(0.0, f64::max);
        p = next;
        if change < 1e-12 {
            break;
        }
    }
    p
}

/// Each clip's wins, losses, ties and score, by job id.
pub fn clip_scores(votes: &[Vote]) -> BTreeMap<String, ClipScore> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut names: Vec<&str> = Vec::new();
    for v in votes {
        for id in [v.left.as_str(), v.right.as_str()] {
            index.entry(id).or_insert_with(|| {
                names.push(id);
                names.len() - 1
            });
        }
    }
    let mut games = vec![vec![0.0; names.len()]; names.len()];
    let mut scores: BTreeMap<String, ClipScore> = BTreeMap::new();
    for v in votes {
        let (l, r) = (index[v.left.as_str()], index[v.right.as_str()]);
        if l == r {
            continue;
        }
        match v.winner {
            Winner::Left => games[l][r] += 1.0,
            Winner::Right => games[r][l] += 1.0,
            Winner::Tie => {
                games[l][r] += 0.5;
                games[r][l] += 0.5;
            }
        }
        let (winner, loser) = match v.winner {
            Winner::Left => (Some(&v.left), Some(&v.right)),
            Winner::Right => (Some(&v.right), Some(&v.left)),
            Winner::Tie => (None, None),
        };
        for id in [&v.left, &v.right] {
            let s = scores.entry(id.clone()).or_default();
            if winner == Some(id) {
                s.wins += 1;
            } else if loser == Some(id) {
                s.losses += 1;
            } else {
                s.ties += 1;
            }
        }
    }
    let strengths = bradley_terry(&games, 1.0);
    for (i, name) in names.iter().enumerate() {
        if let Some(s) = scores.get_mut(*name) {
            s.score = Some(strengths[i].ln());
        }
    }
    scores
}

/// The 95 % Wilson score interval of `wins` out of `n`.
pub fn wilson(wins: f64, n: f64) -> (f64, f64) {
    if n <= 0.0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054_f64;
    let p = wins / n;
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    let denominator = 1.0 + z2 / n;
    (
        ((centre - spread) / denominator).max(0.0),
        ((centre + spread) / denominator).min(1.0),
    )
}

/// For every parameter, how each of its values fares: a vote between clips whose values of that
/// parameter differ is a win for the winner's value and a loss for the loser's (a tie, half of
/// each). `params` gives each clip's parameters by job id. Sorted by parameter, then best first.
pub fn value_scores(votes: &[Vote], params: &HashMap<String, BTreeMap<String, String>>) -> Vec<ValueScore> {
    let mut tally: BTreeMap<(String, String), (u32, f64)> = BTreeMap::new();
    let none = BTreeMap::new();
    for v in votes {
        let left = params.get(&v.left).unwrap_or(&none);
        let right = params.get(&v.right).unwrap_or(&none);
        let (left_share, right_share) = match v.winner {
            Winner::Left => (1.0, 0.0),
            Winner::Right => (0.0, 1.0),
            Winner::Tie => (0.5, 0.5),
        };
        for (name, a) in left {
            let Some(b) = right.get(name).filter(|b| *b != a) else {
                continue;
            };
            for (value, share) in [(a, left_share), (b, right_share)] {
                let t = tally.entry((name.clone(), value.clone())).or_default();
                t.0 += 1;
                t.1 += share;
            }
        }
    }
    let mut out: Vec<ValueScore> = tally
        .into_iter()
        .map(|((parameter, value), (comparisons, wins))| {
            let (low, high) = wilson(wins, f64::from(comparisons));
            ValueScore {
                parameter,
                value,
                comparisons,
                wins,
                win_rate: wins / f64::from(comparisons),
                low,
                high,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        a.parameter
            .cmp(&b.parameter)
            .then(b.win_rate.total_cmp(&a.win_rate))
            .then(a.value.cmp(&b.value))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(left: &str, right: &str, winner: Winner) -> Vote {
        Vote {
            left: left.into(),
            right: right.into(),
            winner,
            reviewer: "r".into(),
        }
    }

    #[test]
    fn two_players_strengths_are_in_the_ratio_of_their_wins() {
        // A beat B 3 times, B beat A once: the maximum-likelihood ratio is 3 (by hand: the
        // likelihood p^3 q / (p+q)^4 is largest at p/q = 3).
        let p = bradley_terry(&[vec![0.0, 3.0], vec![1.0, 0.0]], 0.0);
        assert!((p[0] / p[1] - 3.0).abs() < 1e-9, "{p:?}");
        assert!((p[0] * p[1] - 1.0).abs() < 1e-9, "geometric mean 1: {p:?}");
    }

    #[test]
    fn a_cycle_is_a_draw_and_a_chain_is_ordered() {
        // A>B, B>C, C>A once each: all equal.
        let cycle = bradley_terry(&[vec![0.0, 1.0, 0.0], vec![0.0, 0.0, 1.0], vec![1.0, 0.0, 0.0]], 0.0);
        assert!(cycle.iter().all(|s| (s - 1.0).abs() < 1e-9), "{cycle:?}");
        // A chain, with the pretend tie that keeps a clip without wins finite: ordered.
        let scores = clip_scores(&[
            vote("a", "b", Winner::Left),
            vote("b", "a", Winner::Right),
            vote("b", "c", Winner::Left),
        ]);
        let s = |id: &str| scores[id].score.unwrap();
        assert!(s("a") > s("b") && s("b") > s("c"), "{scores:?}");
        assert!(s("a") > 0.0 && s("c") < 0.0, "{scores:?}");
        assert_eq!((scores["a"].wins, scores["a"].losses), (2, 0));
        assert_eq!((scores["b"].wins, scores["b"].losses), (1, 2));
        assert_eq!((scores["c"].wins, scores["c"].losses), (0, 1));
    }

    #[test]
    fn one_win_with_the_pretend_ties_has_the_strength_found_by_hand() {
        // A beat B once; each also half-won a pretend game against the reference (strength 1).
        // By hand: the fixed point has p_B = 1/p_A, and x = p_A solves
        // 1/(x²+1) + 1/(x+1) = 1/2, that is x³ − x² − x − 3 = 0 (x ≈ 2.1304).
        let p = bradley_terry(&[vec![0.0, 1.0], vec![0.0, 0.0]], 1.0);
        let x = p[0];
        assert!((x.powi(3) - x * x - x - 3.0).abs() < 1e-9, "{p:?}");
        assert!((x - 2.1304).abs() < 1e-3 && (p[1] * x - 1.0).abs() < 1e-9, "{p:?}");
    }

    #[test]
    fn value_win_rates_count_only_votes_where_the_value_differs() {
        let params: HashMap<String, BTreeMap<String, String>> = [
            ("a", [("model", "m1"), ("duration_seconds", "5")]),
            ("b", [("model", "m2"), ("duration_seconds", "5")]),
            ("c", [("model", "m2"), ("duration_seconds", "10")]),
        ]
        .into_iter()
        .map(|(id, kv)| {
            (
                id.to_string(),
                kv.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            )
        })
        .collect();
        // a (m1) beats b (m2) twice; b and c tie (same model: only the duration differs);
        // c (m2, 10 s) beats a (m1, 5 s).
        let votes = [
            vote("a", "b", Winner::Left),
            vote("b", "a", Winner::Right),
            vote("b", "c", Winner::Tie),
            vote("c", "a", Winner::Left),
        ];
        let table = value_scores(&votes, &params);
        let row = |p: &str, v: &str| table.iter().find(|r| r.parameter == p && r.value == v).unwrap().clone();
        // By hand: model m1 met m2 in 3 votes and won 2; m2 won 1 of 3.
        assert_eq!((row("model", "m1").comparisons, row("model", "m1").wins), (3, 2.0));
        assert_eq!((row("model", "m2").comparisons, row("model", "m2").wins), (3, 1.0));
        // Durations differ in 2 votes (b–c tie, c–a): 10 s won 1.5 of 2, 5 s won 0.5 of 2.
        assert_eq!(row("duration_seconds", "10").wins, 1.5);
        assert_eq!(row("duration_seconds", "5").win_rate, 0.25);
        // Best first within a parameter.
        assert_eq!(table[0].parameter, "duration_seconds");
        assert_eq!(table[0].value, "10");
        // Wilson, by hand for 2 of 3: centre (2/3 + z²/6) / (1 + z²/3) = 0.5798…
        let (low, high) = wilson(2.0, 3.0);
        assert!(
            (low - 0.2077).abs() < 1e-3 && (high - 0.9385).abs() < 1e-3,
            "{low} {high}"
        );
    }
}
