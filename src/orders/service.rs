//! Order rules and queries: placing an order (validate, reserve, snapshot; a counter sale also
//! pays and fulfils), reading and listing with the visibility rules, the status history,
//! cancellation (refunding a paid order) and fulfilment. No HTTP types here.

use crate::auth::Principal;
use crate::db::schema::{books, customers, order_events, order_lines, orders};
use crate::db::{now, write_transaction, DbConn, WriteTx};
use crate::error::{ApiError, FieldError, Shortage};
use crate::http::{Page, PageParams};
use crate::inventory::stock::{self, Reservation};
use crate::orders::model::*;
use crate::orders::payments::{self, PaymentMethod, PaymentProvider, PaymentStatus};
use crate::orders::refunds::{self, RefundRow};
use crate::orders::state::{self, OrderAction, OrderStatus};
use crate::webhooks::outbox::{self, EventType};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// What placing an order needs from the application's settings.
#[derive(Debug, Clone, Copy)]
pub struct OrderContext<'a> {
    /// The store currency (ISO 4217).
    pub currency: &'a str,
    /// How long an unpaid order keeps its stock reserved.
    pub ttl: Duration,
    /// Enabled payment methods (a counter sale needs `cash`).
    pub payment_methods: &'a [String],
}

fn not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("order {id} does not exist"))
}

/// Whom an order is for: a customer orders for themselves; staff for any existing customer or
/// for a walk-in shopper (none).
fn resolve_customer(user: &Principal, requested: Option<i64>) -> Result<Option<i64>, ApiError> {
    if user.is_staff() {
        return Ok(requested);
    }
    let own = user.customer_id.ok_or_else(|| {
        ApiError::Forbidden("this account has no customer record to order for".into())
    })?;
    match requested {
        Some(other) if other != own => Err(ApiError::Forbidden(
            "a customer can only place orders for themselves".into(),
        )),
        _ => Ok(Some(own)),
    }
}

/// Places an order: checks every line, then in one write transaction reserves stock for all lines
/// (in book-id order, so concurrent orders cannot deadlock), snapshots the books into the lines
/// and records the order and its first event. If any line is short nothing is reserved and the
/// answer is a 409 listing every short line. A counter sale (staff, `payment: {method: cash}`,
/// optionally `fulfil: true`) is also paid, and fulfilled, in that same transaction. `after`
/// runs inside the same transaction with the created order (the idempotency record is stored
/// there).
pub fn create_order(
    conn: &mut DbConn,
    user: &Principal,
    input: &NewOrder,
    ctx: &OrderContext<'_>,
    after: impl FnOnce(&mut DbConn, &OrderView) -> Result<(), ApiError>,
) -> Result<OrderView, ApiError> {
    let customer_id = resolve_customer(user, input.customer_id)?;
    let counter_payment = counter_sale(user, input, ctx.payment_methods)?;
    let currency = ctx.currency;
    let ttl = ctx.ttl;
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    for (i, line) in input.lines.iter().enumerate() {
        if !seen.insert(line.book_id) {
            errors.push(FieldError::new(
                format!("lines[{i}].book_id"),
                "lists a book already ordered on another line",
            ));
        }
    }
    let shipping_address = input
        .shipping_address
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(ApiError::internal)?;
    let notes = input
        .notes
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let ttl = chrono::Duration::from_std(ttl).map_err(ApiError::internal)?;

    write_transaction(conn, |tx| {
        if let (Some(id), true) = (customer_id, user.is_staff()) {
            let exists: i64 = customers::table
                .filter(customers::id.eq(id))
                .count()
                .get_result(tx.conn())?;
            if exists == 0 {
                errors.push(FieldError::new("customer_id", "no such customer"));
            }
        }
        let ids: Vec<i64> = input.lines.iter().map(|l| l.book_id).collect();
        let found: HashMap<i64, (String, String, i64, String)> = books::table
            .filter(books::id.eq_any(&ids))
            .select((
                books::id,
                (
                    books::title,
                    books::isbn,
                    books::list_price_cents,
                    books::status,
                ),
            ))
            .load::<(i64, (String, String, i64, String))>(tx.conn())?
            .into_iter()
            .collect();
        for (i, line) in input.lines.iter().enumerate() {
            match found.get(&line.book_id) {
                None => errors.push(FieldError::new(
                    format!("lines[{i}].book_id"),
                    format!("book {} does not exist", line.book_id),
                )),
                Some((_, _, _, status)) if status != "active" => errors.push(FieldError::new(
                    format!("lines[{i}].book_id"),
                    format!("book {} is not for sale ({status})", line.book_id),
                )),
                Some(_) => {}
            }
        }
        if !errors.is_empty() {
            errors.sort_by(|a, b| a.field.cmp(&b.field));
            return Err(ApiError::Validation(std::mem::take(&mut errors)));
        }

        let mut by_book: Vec<&NewOrderLine> = input.lines.iter().collect();
        by_book.sort_by_key(|l| l.book_id);
        let mut shortages = Vec::new();
        for line in by_book {
            if let Reservation::Short { available } =
                stock::reserve(tx, line.book_id, line.quantity)?
            {
                shortages.push(Shortage {
                    book_id: line.book_id,
                    requested: line.quantity,
                    available,
                });
            }
        }
        if !shortages.is_empty() {
            return Err(ApiError::Shortage(shortages));
        }

        let mut subtotal: i64 = 0;
        let mut priced = Vec::with_capacity(input.lines.len());
        for line in &input.lines {
            let (title, isbn, price, _) = &found[&line.book_id];
            let total = price
                .checked_mul(line.quantity)
                .ok_or_else(|| ApiError::internal("line total overflows"))?;
            subtotal = subtotal
                .checked_add(total)
                .ok_or_else(|| ApiError::internal("order total overflows"))?;
            priced.push((line, title, isbn, *price, total));
        }
        let at = now();
        let row: OrderRow = diesel::insert_into(orders::table)
            .values((
                orders::customer_id.eq(customer_id),
                orders::status.eq(OrderStatus::PendingPayment.as_str()),
                orders::currency.eq(currency),
                orders::subtotal_cents.eq(subtotal),
                orders::total_cents.eq(subtotal),
                orders::shipping_address.eq(shipping_address.as_deref()),
                orders::notes.eq(notes),
                orders::expires_at.eq(at + ttl),
                orders::created_by.eq(user.user_id),
                orders::version.eq(1),
                orders::created_at.eq(at),
                orders::updated_at.eq(at),
            ))
            .returning(orders::all_columns)
            .get_result(tx.conn())?;
        let mut lines = Vec::with_capacity(priced.len());
        for (position, (line, title, isbn, price, total)) in priced.into_iter().enumerate() {
            let line: OrderLineRow = diesel::insert_into(order_lines::table)
                .values((
                    order_lines::order_id.eq(row.id),
                    order_lines::book_id.eq(line.book_id),
                    order_lines::title.eq(title),
                    order_lines::isbn.eq(isbn),
                    order_lines::unit_price_cents.eq(price),
                    order_lines::quantity.eq(line.quantity),
                    order_lines::line_total_cents.eq(total),
                    order_lines::position.eq(position as i32),
                ))
                .returning(order_lines::all_columns)
                .get_result(tx.conn())?;
            lines.push(line);
        }
        record_event(
            tx,
            &row,
            None,
            OrderStatus::PendingPayment,
            Some(user.user_id),
            None,
            at,
        )?;
        let mut row = row;
        if let Some(method) = counter_payment {
            row = transition(
                tx,
                &row,
                OrderAction::Pay,
                Some(user),
                Some("paid at the counter"),
            )?;
            payments::insert(
                tx,
                user,
                row.id,
                &payments::Record {
                    method,
                    amount_cents: row.total_cents,
                    status: PaymentStatus::Succeeded,
                    provider_reference: None,
                    failure_code: None,
                },
            )?;
            if input.fulfil {
                row = transition(
                    tx,
                    &row,
                    OrderAction::Fulfil,
                    Some(user),
                    Some("handed over at the counter"),
                )?;
                consume_lines(tx, row.id, &lines, user.user_id)?;
            }
        }
        let view = OrderView::from_rows(row, lines).map_err(ApiError::internal)?;
        after(tx, &view)?;
        Ok(view)
    })
}

/// Checks the counter-sale fields of `input`: returns the method to take the payment by, if any.
/// Only staff make counter sales, only in cash (a card is charged through
/// `POST /orders/{id}/payments`, outside the order's transaction), and `fulfil` needs payment.
fn counter_sale(
    user: &Principal,
    input: &NewOrder,
    enabled: &[String],
) -> Result<Option<PaymentMethod>, ApiError> {
    if (input.payment.is_some() || input.fulfil) && !user.is_staff() {
        return Err(ApiError::Forbidden(
            "only staff take payment or hand books over with the order (a counter sale)".into(),
        ));
    }
    let Some(payment) = &input.payment else {
        if input.fulfil {
            return Err(ApiError::invalid(
                "fulfil",
                "needs the payment taken with the order (\"payment\": {\"method\": \"cash\"})",
            ));
        }
        return Ok(None);
    };
    if PaymentMethod::parse(payment.method.trim()) != Some(PaymentMethod::Cash) {
        return Err(ApiError::invalid(
            "payment.method",
            "only cash is taken with the order; pay other methods through \
             POST /orders/{id}/payments",
        ));
    }
    if payment.token.is_some() {
        return Err(ApiError::invalid(
            "payment.token",
            "is only taken for card payments",
        ));
    }
    if !enabled.iter().any(|m| m == PaymentMethod::Cash.as_str()) {
        return Err(ApiError::invalid(
            "payment.method",
            format!("cash is not enabled (enabled: {})", enabled.join(", ")),
        ));
    }
    Ok(Some(PaymentMethod::Cash))
}

fn record_event(
    tx: &mut WriteTx<'_>,
    order: &OrderRow,
    from: Option<OrderStatus>,
    to: OrderStatus,
    actor: Option<i64>,
    note: Option<&str>,
    at: NaiveDateTime,
) -> Result<(), ApiError> {
    diesel::insert_into(order_events::table)
        .values((
            order_events::order_id.eq(order.id),
            order_events::from_status.eq(from.map(OrderStatus::as_str)),
            order_events::to_status.eq(to.as_str()),
            order_events::actor_user_id.eq(actor),
            order_events::note.eq(note),
            order_events::created_at.eq(at),
        ))
        .execute(tx.conn())?;
    if let Some(kind) = webhook_event(from, to) {
        outbox::emit(
            tx,
            kind,
            serde_json::json!({
                "order_id": order.id,
                "status": to.as_str(),
                "previous_status": from.map(OrderStatus::as_str),
                "customer_id": order.customer_id,
                "currency": order.currency,
                "total_cents": order.total_cents,
                "note": note,
            }),
        )?;
    }
    Ok(())
}

/// The webhook event a status change announces: placing, paying, fulfilling, cancelling (or
/// expiring) and each received return. Completion is internal bookkeeping and announces nothing.
fn webhook_event(from: Option<OrderStatus>, to: OrderStatus) -> Option<EventType> {
    match (from, to) {
        (None, _) => Some(EventType::OrderCreated),
        (_, OrderStatus::Paid) => Some(EventType::OrderPaid),
        (_, OrderStatus::Fulfilled) => Some(EventType::OrderFulfilled),
        (_, OrderStatus::Cancelled) => Some(EventType::OrderCancelled),
        (_, OrderStatus::PartiallyReturned | OrderStatus::Returned) => {
            Some(EventType::OrderReturned)
        }
        _ => None,
    }
}

/// The order if `user` may see it: staff see every order, a customer only their own (anything
/// else is 404, never a leak).
pub(crate) fn visible_order(
    conn: &mut DbConn,
    user: &Principal,
    id: i64,
) -> Result<OrderRow, ApiError> {
    let mut q = orders::table.filter(orders::id.eq(id)).into_boxed();
    if !user.is_staff() {
        let Some(own) = user.customer_id else {
            return Err(not_found(id));
        };
        q = q.filter(orders::customer_id.eq(own));
    }
    q.select(OrderRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| not_found(id))
}

pub(crate) fn lines_of(
    conn: &mut DbConn,
    ids: &[i64],
) -> Result<HashMap<i64, Vec<OrderLineRow>>, ApiError> {
    let rows: Vec<OrderLineRow> = order_lines::table
        .filter(order_lines::order_id.eq_any(ids))
        .order((order_lines::order_id, order_lines::position))
        .select(OrderLineRow::as_select())
        .load(conn)?;
    let mut out: HashMap<i64, Vec<OrderLineRow>> = HashMap::new();
    for row in rows {
        out.entry(row.order_id).or_default().push(row);
    }
    Ok(out)
}

pub(crate) fn view(conn: &mut DbConn, row: OrderRow) -> Result<OrderView, ApiError> {
    let lines = lines_of(conn, &[row.id])?
        .remove(&row.id)
        .unwrap_or_default();
    OrderView::from_rows(row, lines).map_err(ApiError::internal)
}

/// One order with its lines.
pub fn get_order(conn: &mut DbConn, user: &Principal, id: i64) -> Result<OrderView, ApiError> {
    let row = visible_order(conn, user, id)?;
    view(conn, row)
}

/// An order's status history, oldest first.
pub fn list_events(
    conn: &mut DbConn,
    user: &Principal,
    id: i64,
) -> Result<Vec<OrderEventView>, ApiError> {
    visible_order(conn, user, id)?;
    let rows: Vec<OrderEventRow> = order_events::table
        .filter(order_events::order_id.eq(id))
        .order(order_events::id)
        .select(OrderEventRow::as_select())
        .load(conn)?;
    rows.into_iter()
        .map(|r| OrderEventView::from_row(r).map_err(ApiError::internal))
        .collect()
}

/// Orders matching the filters: all of them for staff, a customer's own for a customer.
pub fn list_orders(
    conn: &mut DbConn,
    user: &Principal,
    query: &OrderQuery,
) -> Result<Page<OrderView>, ApiError> {
    let (page, per_page) = PageParams {
        page: query.page,
        per_page: query.per_page,
    }
    .resolve()?;
    let status = query.status;
    let (from, to) = crate::http::query::time_range(query.from, query.to)?;
    if let (Some((from, _)), Some((to, to_inclusive))) = (from, to) {
        if from > to || (from == to && !to_inclusive) {
            return Err(ApiError::invalid("from", "must not be after to"));
        }
    }
    let sort = query.sort.unwrap_or(OrderSort::CreatedDesc);
    let own = if user.is_staff() {
        None
    } else {
        match user.customer_id {
            Some(own) => Some(own),
            None => {
                return Ok(Page {
                    items: Vec::new(),
                    page,
                    per_page,
                    total: 0,
                })
            }
        }
    };
    let customer_id = query.customer_id;
    let filtered = || {
        let mut q = orders::table.into_boxed();
        if let Some(own) = own {
            q = q.filter(orders::customer_id.eq(own));
        }
        if let Some(c) = customer_id {
            q = q.filter(orders::customer_id.eq(c));
        }
        if let Some(s) = status {
            q = q.filter(orders::status.eq(s.as_str()));
        }
        if let Some((from, _)) = from {
            q = q.filter(orders::created_at.ge(from));
        }
        match to {
            Some((to, true)) => q = q.filter(orders::created_at.le(to)),
            Some((to, false)) => q = q.filter(orders::created_at.lt(to)),
            None => {}
        }
        q
    };
    let total: i64 = filtered().count().get_result(conn)?;
    let q = filtered();
    let q = match sort {
        OrderSort::Created => q.order((orders::created_at.asc(), orders::id.asc())),
        OrderSort::Total => q.order((orders::total_cents.asc(), orders::id.asc())),
        OrderSort::TotalDesc => q.order((orders::total_cents.desc(), orders::id.desc())),
        OrderSort::CreatedDesc => q.order((orders::created_at.desc(), orders::id.desc())),
    };
    let rows: Vec<OrderRow> = q
        .limit(per_page)
        .offset(Page::<OrderView>::offset(page, per_page))
        .select(OrderRow::as_select())
        .load(conn)?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut lines = lines_of(conn, &ids)?;
    let items = rows
        .into_iter()
        .map(|r| {
            let l = lines.remove(&r.id).unwrap_or_default();
            OrderView::from_rows(r, l).map_err(ApiError::internal)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page {
        items,
        page,
        per_page,
        total,
    })
}

/// Moves `row` by `action` with a conditional update (`WHERE status = <the status read>`), so
/// that of concurrent attempts exactly one wins; the others get the 409 of the state machine for
/// the status they now find. Writes the event. Returns the new row.
pub(crate) fn transition(
    tx: &mut WriteTx<'_>,
    row: &OrderRow,
    action: OrderAction,
    by: Option<&Principal>,
    note: Option<&str>,
) -> Result<OrderRow, ApiError> {
    let by_staff = by.is_none_or(Principal::is_staff);
    let from = OrderStatus::parse(&row.status)
        .ok_or_else(|| ApiError::internal(format!("order {} status {}", row.id, row.status)))?;
    let to = state::next(from, action, by_staff)?;
    let at = now();
    let updated: Option<OrderRow> = diesel::update(
        orders::table
            .filter(orders::id.eq(row.id))
            .filter(orders::status.eq(from.as_str())),
    )
    .set((
        orders::status.eq(to.as_str()),
        orders::version.eq(orders::version + 1),
        orders::updated_at.eq(at),
    ))
    .returning(orders::all_columns)
    .get_result(tx.conn())
    .optional()?;
    let Some(updated) = updated else {
        // Someone else moved it first: answer for the status it has now.
        let current: String = orders::table
            .find(row.id)
            .select(orders::status)
            .first(tx.conn())?;
        let current = OrderStatus::parse(&current)
            .ok_or_else(|| ApiError::internal(format!("order {} status {current}", row.id)))?;
        return Err(match state::next(current, action, by_staff) {
            Err(illegal) => illegal.into(),
            Ok(_) => ApiError::Conflict("the order changed meanwhile; retry".into()),
        });
    };
    record_event(
        tx,
        &updated,
        Some(from),
        to,
        by.map(|p| p.user_id),
        note,
        at,
    )?;
    Ok(updated)
}

/// Takes an order to `cancelled` by `action` (cancel or expire) inside the caller's transaction:
/// the conditional transition first (the order row is the first lock every order writer takes),
/// then every line's reservation released, a pending bank transfer failed, and — for a paid order —
/// its payments' refunds planned. Returns the new row, the lines and the planned refunds (to carry
/// out after commit).
pub(crate) fn cancel_in_transaction(
    tx: &mut WriteTx<'_>,
    row: &OrderRow,
    action: OrderAction,
    by: Option<&Principal>,
    note: Option<&str>,
) -> Result<(OrderRow, Vec<OrderLineRow>, Vec<RefundRow>), ApiError> {
    let updated = transition(tx, row, action, by, note)?;
    let lines = lines_of(tx, &[row.id])?.remove(&row.id).unwrap_or_default();
    let mut by_book: Vec<&OrderLineRow> = lines.iter().collect();
    by_book.sort_by_key(|l| l.book_id);
    for line in by_book {
        stock::release(tx, line.book_id, line.quantity)?;
    }
    let code = if action == OrderAction::Expire {
        "order_expired"
    } else {
        "order_cancelled"
    };
    let pending: Vec<i64> = crate::db::schema::payments::table
        .filter(crate::db::schema::payments::order_id.eq(row.id))
        .filter(crate::db::schema::payments::status.eq(PaymentStatus::Pending.as_str()))
        .select(crate::db::schema::payments::id)
        .load(tx.conn())?;
    for payment_id in pending {
        payments::settle_pending(tx, payment_id, PaymentStatus::Failed, Some(code))?;
    }
    let planned = if row.status == OrderStatus::Paid.as_str() {
        let amount = refunds::refundable_total(tx, row.id)?;
        refunds::plan(
            tx,
            row.id,
            amount,
            None,
            note.unwrap_or("order cancelled"),
            by.map(|p| p.user_id),
        )?
    } else {
        Vec::new()
    };
    Ok((updated, lines, planned))
}

/// Cancels an order and releases every line's reservation, exactly once however many cancels
/// (and the expiry task) race. Customers cancel their own unpaid orders, staff any unpaid or paid
/// one; a paid order's payments are refunded in full: the refunds are decided in the
/// cancellation's transaction and carried out through `provider` after it commits (the refund
/// task retries any the provider could not take now).
pub fn cancel_order(
    conn: &mut DbConn,
    provider: &dyn PaymentProvider,
    user: &Principal,
    id: i64,
    input: &CancelOrder,
) -> Result<OrderView, ApiError> {
    let reason = input
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let (updated, lines, planned) = write_transaction(conn, |tx| {
        let row = visible_order(tx, user, id)?;
        cancel_in_transaction(tx, &row, OrderAction::Cancel, Some(user), reason)
    })?;
    refunds::carry_out_planned(conn, provider, &planned);
    OrderView::from_rows(updated, lines).map_err(ApiError::internal)
}

/// Consumes every line's reservation of order `order_id` (in book-id order), writing the `sale`
/// movements, inside the caller's transaction.
fn consume_lines(
    tx: &mut WriteTx<'_>,
    order_id: i64,
    lines: &[OrderLineRow],
    user_id: i64,
) -> Result<(), ApiError> {
    let mut by_book: Vec<&OrderLineRow> = lines.iter().collect();
    by_book.sort_by_key(|l| l.book_id);
    let reference = format!("order:{order_id}");
    for line in by_book {
        stock::consume(tx, line.book_id, line.quantity, &reference, Some(user_id))?;
    }
    Ok(())
}

/// Fulfils a paid order (staff): in one write transaction moves it `paid → fulfilled` with a
/// conditional update and consumes every line's reservation (`on_hand -= q`, `reserved -= q`, a
/// `sale` movement referencing the order), exactly once however many fulfils race: the losers
/// find the order fulfilled and get the state machine's 409.
pub fn fulfil_order(conn: &mut DbConn, user: &Principal, id: i64) -> Result<OrderView, ApiError> {
    write_transaction(conn, |tx| {
        let row = visible_order(tx, user, id)?;
        let updated = transition(tx, &row, OrderAction::Fulfil, Some(user), None)?;
        let lines = lines_of(tx, &[id])?.remove(&id).unwrap_or_default();
        consume_lines(tx, id, &lines, user.user_id)?;
        OrderView::from_rows(updated, lines).map_err(ApiError::internal)
    })
}

/// Marks a fulfilled order completed (staff).
pub fn complete_order(conn: &mut DbConn, user: &Principal, id: i64) -> Result<OrderView, ApiError> {
    write_transaction(conn, |tx| {
        let row = visible_order(tx, user, id)?;
        let updated = transition(tx, &row, OrderAction::Complete, Some(user), None)?;
        view(tx, updated)
    })
}
