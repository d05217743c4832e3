//! The spend ledger: money billed, money held for attempts in flight, and the cap. A submit is
//! admitted only if billed + held + its own reservation stays within the cap. Pure arithmetic;
//! the journal records every reservation, settlement and release, so the ledger survives resumes.

use crate::util::money::Money;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    cap: Option<Money>,
    spent: Money,
    reserved: Money,
    /// Billed and held by other workers of a shared sweep, as last heard.
    others: Money,
}

/// A reservation that would break the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapReached {
    pub needed: Money,
    pub left: Money,
}

impl Ledger {
    pub fn new(cap: Option<Money>, spent: Money, reserved: Money) -> Ledger {
        Ledger {
            cap,
            spent,
            reserved,
            others: Money::ZERO,
        }
    }

    pub fn try_reserve(&mut self, amount: Money) -> Result<(), CapReached> {
        if let Some(cap) = self.cap {
            let committed = self.spent.saturating_add(self.reserved).saturating_add(self.others);
            if committed.saturating_add(amount) > cap {
                return Err(CapReached {
                    needed: amount,
                    left: cap.saturating_sub(committed),
                });
            }
        }
        self.reserved = self.reserved.saturating_add(amount);
        Ok(())
    }

    /// An attempt finished and was billed `charged` against its reservation.
    pub fn settle(&mut self, reservation: Money, charged: Money) {
        self.reserved = self.reserved.saturating_sub(reservation);
        self.spent = self.spent.saturating_add(charged);
    }

    /// An attempt ended unbilled.
    pub fn release(&mut self, reservation: Money) {
        self.reserved = self.reserved.saturating_sub(reservation);
    }

    /// Holds `amount` without checking the cap: a reservation another worker made, for a job this
    /// one took over.
    pub fn hold(&mut self, amount: Money) {
        self.reserved = self.reserved.saturating_add(amount);
    }

    /// What the other workers of a shared sweep have billed and hold.
    pub fn set_others(&mut self, others: Money) {
        self.others = others;
    }

    pub fn others(&self) -> Money {
        self.others
    }

    pub fn spent(&self) -> Money {
        self.spent
    }

    pub fn reserved(&self) -> Money {
        self.reserved
    }

    /// Sets the cap once it is known (a default made from the run's estimate).
    pub fn set_cap(&mut self, cap: Option<Money>) {
        self.cap = cap;
    }

    pub fn cap(&self) -> Option<Money> {
        self.cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_admits_past_the_cap() {
        let c = Money::from_cents;
        let mut ledger = Ledger::new(Some(c(200)), c(50), c(0));
        assert!(ledger.try_reserve(c(100)).is_ok());
        assert_eq!(
            ledger.try_reserve(c(60)),
            Err(CapReached {
                needed: c(60),
                left: c(50)
            })
        );
        assert!(ledger.try_reserve(c(50)).is_ok(), "exactly at the cap is allowed");
        ledger.settle(c(100), c(90));
        ledger.release(c(50));
        assert_eq!((ledger.spent(), ledger.reserved()), (c(140), c(0)));
        assert!(
            Ledger::new(None, c(1_000_000), c(0)).try_reserve(c(1)).is_ok(),
            "no cap, no limit"
        );
    }
}
