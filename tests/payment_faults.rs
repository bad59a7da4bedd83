//! Card charges and keyed writes through faults (issue 10 §2 and §4), on either backend: the
//! provider's answer lost after it charged, the server dying right after the charge or right
//! before it, the order cancelled while its card was being charged, and a database failure in
//! the middle of a keyed order. After each: exactly one charge, recorded or refunded; never two,
//! never one without a payment row; and the client's retry with its `Idempotency-Key` gets an
//! answer, not a key stuck "in progress".

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

mod catalog_support;

mod orders_support;
use orders_support::*;

use bookstore::db::schema::{idempotency_keys, payments};
use bookstore::db::DbConn;
use bookstore::orders::payments::{
    ChargeLookup, Decline, PaymentProvider, ProviderCharge, TestProvider,
};
use bookstore::orders::provider::JournalEntry;
use diesel::prelude::*;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the faulty provider does to the next charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Charges, then answers "unavailable": the answer was lost on the way back.
    LoseAnswer = 1,
    /// Charges, then the process dies before it can record anything (a panic stands for it).
    DieAfterCharge = 2,
    /// The process dies before the charge reaches the provider.
    DieBeforeCharge = 3,
}

/// The test provider (the one "outside" service, which remembers across restarts) with a fault
/// armed for the next charge.
#[derive(Default)]
struct FaultyProvider {
    inner: TestProvider,
    next: AtomicUsize,
}

impl FaultyProvider {
    fn arm(&self, fault: Fault) {
        self.next.store(fault as usize, Ordering::SeqCst);
    }

    fn successful_charges(&self) -> Vec<ProviderCharge> {
        self.inner.successful_charges()
    }

    /// The charges refunded so far.
    fn refunded(&self) -> Vec<String> {
        self.inner
            .entries()
            .into_iter()
            .filter_map(|e| match e {
                JournalEntry::Refund { charge, .. } => Some(charge),
                JournalEntry::Charge { .. } => None,
            })
            .collect()
    }
}

impl PaymentProvider for FaultyProvider {
    fn charge(
        &self,
        amount: i64,
        currency: &str,
        token: &str,
        key: &str,
    ) -> Result<ProviderCharge, Decline> {
        let fault = self.next.swap(0, Ordering::SeqCst);
        if fault == Fault::DieBeforeCharge as usize {
            panic!("injected: the server dies before charging");
        }
        let outcome = self.inner.charge(amount, currency, token, key);
        if fault == Fault::DieAfterCharge as usize {
            panic!("injected: the server dies after charging");
        }
        if fault == Fault::LoseAnswer as usize {
            return Err(Decline::Unavailable("injected: connection reset".into()));
        }
        outcome
    }

    fn lookup(&self, key: &str) -> Result<ChargeLookup, Decline> {
        self.inner.lookup(key)
    }

    fn refund(&self, reference: &str, amount: i64, key: &str) -> Result<String, Decline> {
        self.inner.refund(reference, amount, key)
    }
}

struct Shop {
    app: TestApp,
    provider: Arc<FaultyProvider>,
    staff: String,
    customer: String,
    book: i64,
}

async fn shop() -> Shop {
    let provider = Arc::new(FaultyProvider::default());
    let app = TestApp::spawn_with_provider(|_| {}, provider.clone()).await;
    let staff = app.staff();
    let (_, _, customer) = customer(&app);
    let book = book(&app, &staff, 1, "Alpha", 1250).await;
    receive(&app, &staff, &[(book, 10)]).await;
    Shop {
        app,
        provider,
        staff,
        customer,
        book,
    }
}

fn visa() -> Value {
    json!({"method": "card", "token": "tok_visa"})
}

/// (status, failure_code, provider_reference) of every payment row of the order.
fn payment_rows(app: &TestApp, order: i64) -> Vec<(String, Option<String>, Option<String>)> {
    let mut conn = app.conn();
    payments::table
        .filter(payments::order_id.eq(order))
        .order(payments::id)
        .select((
            payments::status,
            payments::failure_code,
            payments::provider_reference,
        ))
        .load(&mut *conn as &mut DbConn)
        .unwrap()
}

/// Lets the leases of the order's processing payments run out, as time passing would.
fn expire_leases(app: &TestApp, order: i64) {
    let mut conn = app.conn();
    let past = chrono::Utc::now().naive_utc() - chrono::Duration::seconds(1);
    diesel::update(payments::table.filter(payments::order_id.eq(order)))
        .set(payments::lease_until.eq(Some(past)))
        .execute(&mut *conn as &mut DbConn)
        .unwrap();
}

fn sweep(shop: &Shop) -> bookstore::maintenance::Sweep {
    let mut conn = shop.app.conn();
    bookstore::maintenance::sweep(&mut conn, shop.provider.as_ref(), Duration::from_secs(30))
        .unwrap()
}

/// `POST /orders` by the shop's customer with an `Idempotency-Key`.
async fn order_with_key(s: &Shop, key: &str, body: &Value) -> Res {
    let req = s
        .app
        .client
        .post(s.app.url("/api/v1/orders"))
        .bearer_auth(&s.customer)
        .header("Idempotency-Key", key)
        .json(body);
    TestApp::read(req).await
}

/// Keys left unfinished ("in progress").
fn open_keys(app: &TestApp) -> i64 {
    let mut conn = app.conn();
    idempotency_keys::table
        .filter(idempotency_keys::status_code.is_null())
        .count()
        .get_result(&mut *conn as &mut DbConn)
        .unwrap()
}

#[tokio::test]
async fn a_charge_whose_answer_was_lost_is_recorded_once_by_the_retry() {
    let s = shop().await;
    let order = place(&s.app, &s.customer, &[(s.book, 2)]).await;

    s.provider.arm(Fault::LoseAnswer);
    let first = pay_with_key(&s.app, &s.customer, order, "lost-1", visa()).await;
    first.problem(503);
    assert!(first.header("retry-after").is_some());
    // The attempt was written before the charge: the money taken is on record.
    assert_eq!(payment_rows(&s.app, order)[0].0, "processing");
    assert_eq!(s.provider.successful_charges().len(), 1);

    // The documented retry, same key and body: the same provider key, so the same charge.
    let retry = pay_with_key(&s.app, &s.customer, order, "lost-1", visa()).await;
    retry.expect(201);
    assert_eq!(retry.body["order"]["status"], "paid");
    let charges = s.provider.successful_charges();
    assert_eq!(charges.len(), 1, "one charge, however many calls");
    let rows = payment_rows(&s.app, order);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "succeeded");
    assert_eq!(rows[0].2.as_deref(), Some(charges[0].reference.as_str()));
    let again = pay_with_key(&s.app, &s.customer, order, "lost-1", visa()).await;
    again.expect(201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, retry.body);
    assert_eq!(open_keys(&s.app), 0);
    assert_eq!(level(&s.app, s.book), (10, 2));
}

#[tokio::test]
async fn a_crash_after_the_charge_is_recorded_by_the_sweep_and_replayed_to_the_retry() {
    let s = shop().await;
    let order = place(&s.app, &s.customer, &[(s.book, 1)]).await;

    s.provider.arm(Fault::DieAfterCharge);
    let crashed = pay_with_key(&s.app, &s.customer, order, "crash-1", visa()).await;
    assert!(crashed.status.is_server_error(), "{}", crashed.text);
    assert_eq!(s.provider.successful_charges().len(), 1);

    // While the dead request's lease lasts, a retry is told to come back, not charged again.
    let early = pay_with_key(&s.app, &s.customer, order, "crash-1", visa()).await;
    early.problem(409);
    assert!(early.header("retry-after").is_some());
    // So is a payment under another key: the order has a charge being settled.
    card(&s.app, &s.customer, order, "tok_visa")
        .await
        .problem(409);

    // The server restarts; the lease runs out; the sweep asks the provider and records the charge.
    let provider = s.provider.clone();
    let app = s.app.restart_with_provider(|_| {}, provider.clone()).await;
    let s = Shop { app, ..s };
    expire_leases(&s.app, order);
    assert_eq!(sweep(&s).payments_resolved, 1);
    let charges = s.provider.successful_charges();
    assert_eq!(charges.len(), 1);
    let rows = payment_rows(&s.app, order);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "succeeded");
    assert_eq!(rows[0].2.as_deref(), Some(charges[0].reference.as_str()));
    assert_eq!(status_of(&s.app, &s.customer, order).await, "paid");

    let retry = pay_with_key(&s.app, &s.customer, order, "crash-1", visa()).await;
    retry.expect(201);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.body["payment"]["status"], "succeeded");
    assert_eq!(s.provider.successful_charges().len(), 1);
    assert_eq!(open_keys(&s.app), 0);
    // Nothing left for later sweeps.
    assert_eq!(sweep(&s).payments_resolved, 0);
}

#[tokio::test]
async fn a_retry_after_the_lease_takes_the_attempt_over_without_a_second_charge() {
    let s = shop().await;
    let order = place(&s.app, &s.customer, &[(s.book, 1)]).await;
    s.provider.arm(Fault::DieAfterCharge);
    let crashed = pay_with_key(&s.app, &s.customer, order, "take-1", visa()).await;
    assert!(crashed.status.is_server_error());

    expire_leases(&s.app, order);
    let retry = pay_with_key(&s.app, &s.customer, order, "take-1", visa()).await;
    retry.expect(201);
    assert_eq!(retry.body["order"]["status"], "paid");
    assert_eq!(s.provider.successful_charges().len(), 1);
    assert_eq!(payment_rows(&s.app, order).len(), 1);
    assert_eq!(open_keys(&s.app), 0);
}

#[tokio::test]
async fn a_crash_before_the_charge_is_abandoned_and_the_retry_pays_once() {
    let s = shop().await;
    let order = place(&s.app, &s.customer, &[(s.book, 1)]).await;

    s.provider.arm(Fault::DieBeforeCharge);
    let crashed = pay_with_key(&s.app, &s.customer, order, "early-1", visa()).await;
    assert!(crashed.status.is_server_error());
    assert!(s.provider.successful_charges().is_empty());

    expire_leases(&s.app, order);
    assert_eq!(sweep(&s).payments_resolved, 1);
    let rows = payment_rows(&s.app, order);
    assert_eq!(
        rows,
        vec![("failed".into(), Some("abandoned".into()), None)]
    );
    assert_eq!(open_keys(&s.app), 0, "the key is free again");

    let retry = pay_with_key(&s.app, &s.customer, order, "early-1", visa()).await;
    retry.expect(201);
    assert!(retry.header("idempotent-replayed").is_none());
    assert_eq!(s.provider.successful_charges().len(), 1);
    assert_eq!(payment_rows(&s.app, order)[1].0, "succeeded");
}

#[tokio::test]
async fn a_charge_settled_after_the_order_was_cancelled_is_refunded() {
    let s = shop().await;
    let order = place(&s.app, &s.customer, &[(s.book, 3)]).await;
    s.provider.arm(Fault::LoseAnswer);
    pay_with_key(&s.app, &s.customer, order, "late-1", visa())
        .await
        .problem(503);

    s.app
        .post(
            &format!("/api/v1/orders/{order}/cancel"),
            Some(&s.staff),
            json!({"reason": "customer called"}),
        )
        .await
        .expect(200);
    assert_eq!(level(&s.app, s.book), (10, 0));

    // The lease was given up with the lost answer: the next sweep settles it at once.
    assert_eq!(sweep(&s).payments_resolved, 1);
    let charges = s.provider.successful_charges();
    assert_eq!(charges.len(), 1);
    assert_eq!(s.provider.refunded(), vec![charges[0].reference.clone()]);
    let rows = payment_rows(&s.app, order);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "failed");
    assert_eq!(rows[0].1.as_deref(), Some("order_not_payable"));
    let refunds = refunds_of(&s.app, &s.staff, order).await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["status"], "succeeded");
    assert_eq!(refunds[0]["amount_cents"], 3 * 1250);
    // The client's retry learns the outcome: the order was not payable.
    pay_with_key(&s.app, &s.customer, order, "late-1", visa())
        .await
        .problem(409);
    assert_eq!(status_of(&s.app, &s.customer, order).await, "cancelled");
}

#[tokio::test]
async fn without_a_key_a_new_payment_waits_for_the_charge_in_flight() {
    let s = shop().await;
    let order = place(&s.app, &s.customer, &[(s.book, 1)]).await;
    s.provider.arm(Fault::LoseAnswer);
    card(&s.app, &s.customer, order, "tok_visa")
        .await
        .problem(503);
    let again = card(&s.app, &s.customer, order, "tok_visa").await;
    again.problem(409);
    assert!(again.header("retry-after").is_some());
    assert_eq!(sweep(&s).payments_resolved, 1);
    assert_eq!(status_of(&s.app, &s.customer, order).await, "paid");
    card(&s.app, &s.customer, order, "tok_visa")
        .await
        .problem(409);
    assert_eq!(s.provider.successful_charges().len(), 1);
}

/// Makes every insert into `order_events` fail (as a database fault in the middle of a keyed
/// order would), and every delete from `idempotency_keys` too (so that a claim taken before the
/// work could not be cleaned up after it, as after a crash). Returns the SQL that undoes it.
fn break_order_writes(app: &TestApp) -> Vec<&'static str> {
    let mut conn = app.conn();
    let conn: &mut DbConn = &mut conn;
    let postgres = matches!(conn, DbConn::Pg(_));
    let statements: &[&str] = if postgres {
        &[
            "CREATE FUNCTION injected_fault() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$",
            "CREATE TRIGGER fail_events BEFORE INSERT ON order_events \
             FOR EACH ROW EXECUTE FUNCTION injected_fault()",
            "CREATE TRIGGER fail_key_deletes BEFORE DELETE ON idempotency_keys \
             FOR EACH ROW EXECUTE FUNCTION injected_fault()",
        ]
    } else {
        &[
            "CREATE TRIGGER fail_events BEFORE INSERT ON order_events \
             BEGIN SELECT RAISE(ABORT, 'injected fault'); END",
            "CREATE TRIGGER fail_key_deletes BEFORE DELETE ON idempotency_keys \
             BEGIN SELECT RAISE(ABORT, 'injected fault'); END",
        ]
    };
    for sql in statements {
        diesel::sql_query(*sql).execute(conn).unwrap();
    }
    if postgres {
        vec![
            "DROP TRIGGER fail_events ON order_events",
            "DROP TRIGGER fail_key_deletes ON idempotency_keys",
        ]
    } else {
        vec!["DROP TRIGGER fail_events", "DROP TRIGGER fail_key_deletes"]
    }
}

#[tokio::test]
async fn a_keyed_order_that_failed_midway_leaves_no_claim_and_the_retry_places_it_once() {
    let s = shop().await;
    let body = json!({"lines": [{"book_id": s.book, "quantity": 2}]});
    let send = || order_with_key(&s, "order-1", &body);
    let undo = break_order_writes(&s.app);
    send().await.problem(500);
    assert_eq!(s.app.count("orders"), 0);
    assert_eq!(
        s.app.count("idempotency_keys"),
        0,
        "no claim outlives its work"
    );
    assert_eq!(level(&s.app, s.book), (10, 0));

    {
        let mut conn = s.app.conn();
        for sql in undo {
            diesel::sql_query(sql)
                .execute(&mut *conn as &mut DbConn)
                .unwrap();
        }
    }
    let placed = send().await;
    placed.expect(201);
    let replay = send().await;
    replay.expect(201);
    assert_eq!(replay.body["id"], placed.body["id"]);
    assert_eq!(s.app.count("orders"), 1);
    assert_eq!(level(&s.app, s.book), (10, 2));
}

#[tokio::test]
async fn a_claim_left_by_an_older_version_is_released_after_two_minutes() {
    let s = shop().await;
    let body = json!({"lines": [{"book_id": s.book, "quantity": 1}]});
    let input: bookstore::orders::model::NewOrder = serde_json::from_value(body.clone()).unwrap();
    let hash = bookstore::idempotency::request_hash(&input).unwrap();
    let user_id = s.app.state.tokens.verify(&s.customer).unwrap().sub;
    let insert_claim = |minutes_ago: i64| {
        let mut conn = s.app.conn();
        diesel::insert_into(idempotency_keys::table)
            .values((
                idempotency_keys::scope.eq(format!("user:{user_id}")),
                idempotency_keys::key.eq("legacy-1"),
                idempotency_keys::request_hash.eq(&hash),
                idempotency_keys::created_at
                    .eq(chrono::Utc::now().naive_utc() - chrono::Duration::minutes(minutes_ago)),
            ))
            .execute(&mut *conn as &mut DbConn)
            .unwrap();
    };
    let send = || order_with_key(&s, "legacy-1", &body);
    // A fresh unfinished claim may belong to a request still running: the retry waits.
    insert_claim(0);
    send().await.problem(409);
    {
        let mut conn = s.app.conn();
        diesel::delete(idempotency_keys::table)
            .execute(&mut *conn as &mut DbConn)
            .unwrap();
    }
    // One older than any request is a dead claim: the retry runs, once.
    insert_claim(10);
    send().await.expect(201);
    send().await.expect(201);
    assert_eq!(s.app.count("orders"), 1);
    assert_eq!(open_keys(&s.app), 0);
}
