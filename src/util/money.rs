//! Money as an integer count of micro-cents (1 cent = 1,000,000), the finest unit RunAPI reports
//! (`billing.settlement.amount_micro_cents`). Integers keep the spend ledger exact: prices such as
//! 22.5 cents per second and sums of many jobs never drift.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Money(u64);

const PER_CENT: u64 = 1_000_000;
const PER_DOLLAR: u64 = 100 * PER_CENT;
/// Larger amounts are refused as input (well inside u64 micro-cents, 1.8e11 dollars).
const MAX_USD: f64 = 1e11;

impl Money {
    pub const ZERO: Money = Money(0);
    /// The largest amount accepted as input, for messages.
    pub const MAX_INPUT: &'static str = "$100,000,000,000";

    pub const fn from_micro_cents(n: u64) -> Money {
        Money(n)
    }

    pub const fn from_cents(n: u64) -> Money {
        Money(n * PER_CENT)
    }

    /// A decimal number of cents from user input or a server, if finite, non-negative and sane.
    pub fn from_cents_f64(cents: f64) -> Option<Money> {
        (0.0..=MAX_USD * 100.0)
            .contains(&cents)
            .then(|| Money((cents * PER_CENT as f64).round() as u64))
    }

    /// A decimal number of US dollars, if finite, non-negative and sane.
    pub fn from_usd_f64(usd: f64) -> Option<Money> {
        (0.0..=MAX_USD)
            .contains(&usd)
            .then(|| Money((usd * PER_DOLLAR as f64).round() as u64))
    }

    pub const fn micro_cents(self) -> u64 {
        self.0
    }

    pub fn usd(self) -> f64 {
        self.0 as f64 / PER_DOLLAR as f64
    }

    /// In US dollars, rounded up to a whole cent: an amount that covers this one when typed back.
    pub fn usd_ceil_cents(self) -> f64 {
        self.0.div_ceil(PER_CENT) as f64 / 100.0
    }

    pub fn cents(self) -> f64 {
        self.0 as f64 / PER_CENT as f64
    }

    pub fn saturating_add(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }

    pub fn saturating_sub(self, other: Money) -> Money {
        Money(self.0.saturating_sub(other.0))
    }

    pub fn saturating_mul(self, n: u64) -> Money {
        Money(self.0.saturating_mul(n))
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, Money::saturating_add)
    }
}

/// `$12.34`, rounded half up to the cent.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cents = (self.0 + PER_CENT / 2) / PER_CENT;
        let text = format!("${}.{:02}", cents / 100, cents % 100);
        f.pad(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_rounded_dollars() {
        assert_eq!(Money::from_cents(1234).to_string(), "$12.34");
        assert_eq!(
            Money::from_cents_f64(22.5).unwrap().saturating_mul(10).to_string(),
            "$2.25"
        );
        assert_eq!(Money::from_micro_cents(499_999).to_string(), "$0.00");
        assert_eq!(Money::from_micro_cents(500_000).to_string(), "$0.01");
    }

    #[test]
    fn refuses_nonsense() {
        assert!(Money::from_usd_f64(f64::NAN).is_none());
        assert!(Money::from_usd_f64(-1.0).is_none());
        assert!(Money::from_usd_f64(1e12).is_none());
        assert_eq!(Money::from_usd_f64(25.0), Some(Money::from_cents(2500)));
    }
}
