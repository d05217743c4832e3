//! Matrix combinations with GitHub Actions semantics: the cartesian product of the axes, minus
//! combinations matching an `exclude` entry, then each `include` entry either extends every
//! combination it does not contradict (it may not overwrite an axis value) or, if it fits none,
//! is added as a combination of its own.

use crate::manifest::{Matrix, Origin, Problem, Sourced};
use serde_json::Value;

/// One combination: field name, value and the place the value was written, in axis order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Combination {
    pub values: Vec<(String, Sourced<Value>)>,
}

impl Combination {
    pub fn get(&self, name: &str) -> Option<&Sourced<Value>> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    fn set(&mut self, name: &str, value: Sourced<Value>) {
        match self.values.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value,
            None => self.values.push((name.to_string(), value)),
        }
    }
}

/// All combinations of `matrix`; refuses (before building any) a product larger than `cap`.
pub fn combinations(matrix: &Matrix, cap: u64) -> Result<Vec<Combination>, Problem> {
    let product = matrix
        .axes
        .iter()
        .try_fold(1u64, |acc, (_, values)| acc.checked_mul(values.len() as u64))
        .filter(|n| *n <= cap);
    let Some(product) = product else {
        return Err(Problem::new(
            Origin::yaml("matrix"),
            format!("the matrix has more than {cap} combinations"),
        )
        .hint("narrow the sweep or split it into several manifests"));
    };
    let mut combos: Vec<Combination> = Vec::with_capacity(product as usize);
    combos.push(Combination::default());
    for (name, values) in &matrix.axes {
        let mut next = Vec::with_capacity(combos.len() * values.len());
        for combo in &combos {
            for value in values {
                let mut c = combo.clone();
                c.values.push((name.clone(), value.clone()));
                next.push(c);
            }
        }
        combos = next;
    }
    if matrix.axes.is_empty() && !matrix.include.is_empty() {
        combos.clear();
    }
    combos.retain(|combo| {
        !matrix.exclude.iter().any(|ex| {
            !ex.fields.is_empty()
                && ex
                    .fields
                    .iter()
                    .all(|(k, v)| combo.get(k).is_some_and(|c| c.value == v.value))
        })
    });
    let original = combos.len();
    let is_axis = |name: &str| matrix.axes.iter().any(|(axis, _)| axis == name);
    for include in &matrix.include {
        let mut fitted = false;
        for combo in combos.iter_mut().take(original) {
            let fits = include
                .fields
                .iter()
                .all(|(k, v)| !is_axis(k) || combo.get(k).is_some_and(|c| c.value == v.value));
            if fits {
                fitted = true;
                for (k, v) in &include.fields {
                    combo.set(k, v.clone());
                }
            }
        }
        if !fitted {
            combos.push(Combination {
                values: include.fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            });
        }
    }
    Ok(combos)
}
