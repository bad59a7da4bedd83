//! The card payment provider seam: [`PaymentProvider`], and [`TestProvider`], the built-in one for
//! development, tests and the crash test.
//!
//! Every charge carries an idempotency key that the bookstore writes down before it calls the
//! provider (see [`crate::orders::card`]): the provider treats calls with one key as one charge
//! and can be asked, by key, what became of it. That is what lets a charge whose outcome was lost
//! (a crash, a timeout) be settled later without charging the card twice.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{BufRead, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A successful charge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderCharge {
    /// The provider's id of the charge, needed to refund it.
    pub reference: String,
}

/// Why the provider did not charge (or refund).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decline {
    /// The card was declined: `code` such as `card_declined` or `insufficient_funds`.
    Declined { code: String, message: String },
    /// The token (or, for a refund, the charge) is not one the provider knows.
    InvalidToken,
    /// The provider could not be reached or failed on its side: worth retrying later. For a
    /// charge, the card may or may not have been charged: ask [`PaymentProvider::lookup`].
    Unavailable(String),
}

/// What the provider knows of a charge key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeLookup {
    /// A charge was attempted with the key: its outcome (never `Unavailable`).
    Attempted(Result<ProviderCharge, Decline>),
    /// No charge was ever attempted with the key.
    Unknown,
}

/// A card payment processor: authorize and capture in one step, and refund.
pub trait PaymentProvider: Send + Sync {
    /// Charges `amount_cents` to the card `token`. Calls with the same `idempotency_key` are one
    /// charge: a repeat answers the first call's outcome and charges nothing more.
    fn charge(
        &self,
        amount_cents: i64,
        currency: &str,
        token: &str,
        idempotency_key: &str,
    ) -> Result<ProviderCharge, Decline>;

    /// What became of the charge made with `idempotency_key`, if any.
    fn lookup(&self, idempotency_key: &str) -> Result<ChargeLookup, Decline>;

    /// Refunds `amount_cents` of the charge `reference`; returns the refund's reference. The
    /// provider must treat calls with the same `idempotency_key` as one refund, since a refund is
    /// retried when its outcome was not recorded.
    fn refund(
        &self,
        reference: &str,
        amount_cents: i64,
        idempotency_key: &str,
    ) -> Result<String, Decline>;
}

/// One line of the test provider's journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JournalEntry {
    Charge {
        key: String,
        amount_cents: i64,
        outcome: Result<ProviderCharge, Decline>,
    },
    Refund {
        key: String,
        charge: String,
        amount_cents: i64,
        reference: String,
    },
}

/// The built-in provider for development and tests: `tok_visa` succeeds, `tok_declined` and
/// `tok_insufficient_funds` are declined, any other token is invalid.
///
/// Like a real provider it remembers every charge and refund by idempotency key (in memory, and
/// in an append-only journal file when one is given, so that it remembers across restarts: the
/// crash test reads that file to check that every charge was recorded or refunded).
#[derive(Debug, Default)]
pub struct TestProvider {
    charges: Mutex<HashMap<String, Result<ProviderCharge, Decline>>>,
    refunds: Mutex<HashMap<String, String>>,
    journal: Option<PathBuf>,
    /// Held while appending to the journal, so that concurrent entries never interleave.
    appending: Mutex<()>,
    entries: Mutex<Vec<JournalEntry>>,
}

impl TestProvider {
    pub fn new() -> TestProvider {
        TestProvider::default()
    }

    /// A provider that appends what it does to `path`, after reading back what an earlier run
    /// wrote there.
    pub fn with_journal(path: &Path) -> std::io::Result<TestProvider> {
        let provider = TestProvider {
            journal: Some(path.to_owned()),
            ..TestProvider::default()
        };
        if path.exists() {
            let file = std::fs::File::open(path)?;
            for line in std::io::BufReader::new(file).lines() {
                let line = line?;
                // A crash may cut the last line short: it was never acted on.
                if let Ok(entry) = serde_json::from_str::<JournalEntry>(&line) {
                    provider.remember(entry);
                }
            }
            // End such a torn line, so that the next entry is not glued to it (and lost).
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .append(true)
                .open(path)?;
            let len = file.metadata()?.len();
            if len > 0 {
                let mut last = [0u8; 1];
                file.seek(std::io::SeekFrom::Start(len - 1))?;
                file.read_exact(&mut last)?;
                if last[0] != b'\n' {
                    file.write_all(b"\n")?;
                }
            }
        }
        Ok(provider)
    }

    /// Everything charged or refunded so far, in order.
    pub fn entries(&self) -> Vec<JournalEntry> {
        lock(&self.entries).clone()
    }

    /// The successful charges so far.
    pub fn successful_charges(&self) -> Vec<ProviderCharge> {
        self.entries()
            .into_iter()
            .filter_map(|e| match e {
                JournalEntry::Charge {
                    outcome: Ok(charge),
                    ..
                } => Some(charge),
                _ => None,
            })
            .collect()
    }

    fn remember(&self, entry: JournalEntry) {
        match &entry {
            JournalEntry::Charge { key, outcome, .. } => {
                lock(&self.charges).insert(key.clone(), outcome.clone());
            }
            JournalEntry::Refund { key, reference, .. } => {
                lock(&self.refunds).insert(key.clone(), reference.clone());
            }
        }
        lock(&self.entries).push(entry);
    }

    /// Writes `entry` down (journal first, as a real provider commits before it answers).
    fn record(&self, entry: JournalEntry) -> Result<(), Decline> {
        if let Some(path) = &self.journal {
            let mut line = serde_json::to_string(&entry)
                .map_err(|e| Decline::Unavailable(format!("journal: {e}")))?;
            line.push('\n');
            // One write per entry, one writer at a time: lines never interleave.
            let _appending = lock(&self.appending);
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(line.as_bytes()).and_then(|()| f.sync_data()))
                .map_err(|e| Decline::Unavailable(format!("journal {}: {e}", path.display())))?;
        }
        self.remember(entry);
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn outcome_of(token: &str) -> Result<ProviderCharge, Decline> {
    match token {
        "tok_visa" => Ok(ProviderCharge {
            reference: format!("test_ch_{}", uuid::Uuid::new_v4().simple()),
        }),
        "tok_declined" => Err(Decline::Declined {
            code: "card_declined".into(),
            message: "the card was declined".into(),
        }),
        "tok_insufficient_funds" => Err(Decline::Declined {
            code: "insufficient_funds".into(),
            message: "the card has insufficient funds".into(),
        }),
        _ => Err(Decline::InvalidToken),
    }
}

impl PaymentProvider for TestProvider {
    fn charge(
        &self,
        amount_cents: i64,
        _currency: &str,
        token: &str,
        idempotency_key: &str,
    ) -> Result<ProviderCharge, Decline> {
        // One charge per key, however many calls race with it.
        let mut charges = lock(&self.charges);
        if let Some(first) = charges.get(idempotency_key) {
            return first.clone();
        }
        let outcome = outcome_of(token);
        charges.insert(idempotency_key.to_owned(), outcome.clone());
        drop(charges);
        self.record(JournalEntry::Charge {
            key: idempotency_key.to_owned(),
            amount_cents,
            outcome: outcome.clone(),
        })?;
        outcome
    }

    fn lookup(&self, idempotency_key: &str) -> Result<ChargeLookup, Decline> {
        Ok(match lock(&self.charges).get(idempotency_key) {
            Some(outcome) => ChargeLookup::Attempted(outcome.clone()),
            None => ChargeLookup::Unknown,
        })
    }

    fn refund(
        &self,
        reference: &str,
        amount_cents: i64,
        idempotency_key: &str,
    ) -> Result<String, Decline> {
        if !reference.starts_with("test_ch_") {
            return Err(Decline::InvalidToken);
        }
        if let Some(first) = lock(&self.refunds).get(idempotency_key) {
            return Ok(first.clone());
        }
        let refund = format!("test_re_{}", uuid::Uuid::new_v4().simple());
        self.record(JournalEntry::Refund {
            key: idempotency_key.to_owned(),
            charge: reference.to_owned(),
            amount_cents,
            reference: refund.clone(),
        })?;
        Ok(refund)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_provider_knows_its_tokens() {
        let p = TestProvider::new();
        let ok = p.charge(100, "USD", "tok_visa", "k1").unwrap();
        assert!(ok.reference.starts_with("test_ch_"));
        assert!(p
            .refund(&ok.reference, 100, "r1")
            .unwrap()
            .starts_with("test_re_"));
        let code = |t: &str, k: &str| match p.charge(100, "USD", t, k) {
            Err(Decline::Declined { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code("tok_declined", "k2"), "card_declined");
        assert_eq!(code("tok_insufficient_funds", "k3"), "insufficient_funds");
        assert_eq!(
            p.charge(100, "USD", "tok_nope", "k4"),
            Err(Decline::InvalidToken)
        );
    }

    #[test]
    fn one_key_is_one_charge_and_can_be_looked_up() {
        let p = TestProvider::new();
        assert_eq!(p.lookup("k").unwrap(), ChargeLookup::Unknown);
        let first = p.charge(100, "USD", "tok_visa", "k").unwrap();
        assert_eq!(p.charge(100, "USD", "tok_visa", "k").unwrap(), first);
        assert_eq!(p.successful_charges(), vec![first.clone()]);
        assert_eq!(p.lookup("k").unwrap(), ChargeLookup::Attempted(Ok(first)));
        let a = p.refund("test_ch_x", 50, "r").unwrap();
        assert_eq!(p.refund("test_ch_x", 50, "r").unwrap(), a);
    }

    #[test]
    fn the_journal_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("journal-{}", uuid::Uuid::new_v4()));
        let first = {
            let p = TestProvider::with_journal(&dir).unwrap();
            p.charge(100, "USD", "tok_visa", "k").unwrap()
        };
        let again = TestProvider::with_journal(&dir).unwrap();
        assert_eq!(
            again.lookup("k").unwrap(),
            ChargeLookup::Attempted(Ok(first.clone()))
        );
        assert_eq!(again.charge(100, "USD", "tok_visa", "k").unwrap(), first);
        assert_eq!(again.successful_charges().len(), 1);
        std::fs::remove_file(dir).unwrap();
    }

    /// Concurrent charges used to interleave their journal lines (a line and its newline were
    /// two writes), and a re-read provider forgot both charges of such a line.
    #[test]
    fn concurrent_charges_are_all_remembered_after_a_restart() {
        let path = std::env::temp_dir().join(format!("journal-{}", uuid::Uuid::new_v4()));
        let p = std::sync::Arc::new(TestProvider::with_journal(&path).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let p = p.clone();
                std::thread::spawn(move || {
                    for n in 0..200 {
                        p.charge(100, "USD", "tok_visa", &format!("k{t}-{n}"))
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let again = TestProvider::with_journal(&path).unwrap();
        let forgotten: Vec<String> = (0..8)
            .flat_map(|t| (0..200).map(move |n| format!("k{t}-{n}")))
            .filter(|k| again.lookup(k).unwrap() == ChargeLookup::Unknown)
            .collect();
        assert_eq!(forgotten, Vec::<String>::new());
        std::fs::remove_file(path).unwrap();
    }

    /// A kill in the middle of a write leaves a torn last line: what is appended after it must
    /// not be glued to it (and so lost at the next restart).
    #[test]
    fn a_torn_last_line_does_not_swallow_the_next_entry() {
        let path = std::env::temp_dir().join(format!("journal-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, "{\"kind\":\"charge\",\"key\":\"to").unwrap();
        let first = TestProvider::with_journal(&path)
            .unwrap()
            .charge(100, "USD", "tok_visa", "k")
            .unwrap();
        let again = TestProvider::with_journal(&path).unwrap();
        assert_eq!(
            again.lookup("k").unwrap(),
            ChargeLookup::Attempted(Ok(first))
        );
        std::fs::remove_file(path).unwrap();
    }
}
