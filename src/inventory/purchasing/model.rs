//! Suppliers and purchase orders: rows, request bodies, response views, the one place where a
//! supplier's fields are validated, and the purchase order state machine.

use crate::catalog::model::utc;
use crate::db::schema::{purchase_order_lines, purchase_orders, stock_receipts, suppliers};
use crate::error::{ApiError, FieldError};
use crate::inventory::model::ReceiptView;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::{Validate, ValidateEmail};

/// Most lines a purchase order (or one receipt against it) may have.
pub const MAX_LINES: usize = 500;

/// Distinguishes an absent field (keep) from an explicit `null` (clear).
fn double_option<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

// ---------------------------------------------------------------------------------------------
// Suppliers
// ---------------------------------------------------------------------------------------------

/// A row of `suppliers`, in column order.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = suppliers)]
pub struct SupplierRow {
    pub id: i64,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub lead_time_days: i32,
    pub notes: Option<String>,
    pub archived_at: Option<NaiveDateTime>,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl SupplierRow {
    /// The row's fields as a patch applies to them.
    pub fn fields(&self) -> SupplierFields {
        SupplierFields {
            name: self.name.clone(),
            email: self.email.clone(),
            phone: self.phone.clone(),
            address: self.address.clone(),
            lead_time_days: i64::from(self.lead_time_days),
            notes: self.notes.clone(),
        }
    }
}

/// A supplier.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 3, "name": "Gollancz Distribution", "email": "orders@gollancz.example",
    "phone": "+44 20 7946 0000", "address": "Carmelite House, 50 Victoria Embankment, London",
    "lead_time_days": 10, "notes": "Account 4471; invoices monthly", "archived": false,
    "archived_at": null, "version": 1,
    "created_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:00:00Z"
}))]
pub struct SupplierView {
    pub id: i64,
    /// Unique among active suppliers, case-insensitively.
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    /// Days from ordering to delivery, usually; a new purchase order's default `expected_on` is
    /// today plus this.
    pub lead_time_days: i32,
    pub notes: Option<String>,
    /// An archived supplier (one deleted while it had purchase orders) takes no new orders.
    pub archived: bool,
    pub archived_at: Option<DateTime<Utc>>,
    /// Send it back in `If-Match` to change the supplier.
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<SupplierRow> for SupplierView {
    fn from(row: SupplierRow) -> Self {
        SupplierView {
            id: row.id,
            name: row.name,
            email: row.email,
            phone: row.phone,
            address: row.address,
            lead_time_days: row.lead_time_days,
            notes: row.notes,
            archived: row.archived_at.is_some(),
            archived_at: row.archived_at.map(utc),
            version: row.version,
            created_at: utc(row.created_at),
            updated_at: utc(row.updated_at),
        }
    }
}

/// Body of `POST /suppliers`.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[schema(example = json!({
    "name": "Gollancz Distribution", "email": "orders@gollancz.example",
    "phone": "+44 20 7946 0000", "address": "Carmelite House, 50 Victoria Embankment, London",
    "lead_time_days": 10, "notes": "Account 4471; invoices monthly"
}))]
#[serde(deny_unknown_fields)]
pub struct NewSupplier {
    /// 1 to 200 characters once trimmed; unique among active suppliers, case-insensitively.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[schema(format = Email, max_length = 254)]
    pub email: Option<String>,
    /// 5 to 20 digits, optionally with `+ ( ) - .` and spaces.
    #[schema(max_length = 40)]
    pub phone: Option<String>,
    #[schema(max_length = 1000)]
    pub address: Option<String>,
    /// 0 to 365; 7 when absent.
    #[schema(minimum = 0, maximum = 365, default = 7)]
    pub lead_time_days: Option<i64>,
    #[schema(max_length = 4000)]
    pub notes: Option<String>,
}

impl NewSupplier {
    /// The fields to validate and write.
    pub fn fields(&self) -> SupplierFields {
        SupplierFields {
            name: self.name.clone(),
            email: self.email.clone(),
            phone: self.phone.clone(),
            address: self.address.clone(),
            lead_time_days: self.lead_time_days.unwrap_or(DEFAULT_LEAD_TIME_DAYS),
            notes: self.notes.clone(),
        }
    }
}

/// Body of `PATCH /suppliers/{id}`: absent fields are kept, `null` clears an optional field.
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[schema(example = json!({"lead_time_days": 14, "phone": null}))]
#[serde(deny_unknown_fields)]
pub struct SupplierPatch {
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, format = Email, max_length = 254)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 40)]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 1000)]
    pub address: Option<Option<String>>,
    #[schema(minimum = 0, maximum = 365)]
    pub lead_time_days: Option<i64>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 4000)]
    pub notes: Option<Option<String>>,
}

impl SupplierPatch {
    /// `current` with this patch applied (not yet validated).
    pub fn apply(&self, current: SupplierFields) -> SupplierFields {
        SupplierFields {
            name: self.name.clone().unwrap_or(current.name),
            email: self.email.clone().unwrap_or(current.email),
            phone: self.phone.clone().unwrap_or(current.phone),
            address: self.address.clone().unwrap_or(current.address),
            lead_time_days: self.lead_time_days.unwrap_or(current.lead_time_days),
            notes: self.notes.clone().unwrap_or(current.notes),
        }
    }
}

pub const DEFAULT_LEAD_TIME_DAYS: i64 = 7;

/// A supplier's own fields, as written by create and update alike. [`SupplierFields::validate`]
/// is the one place they are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupplierFields {
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub lead_time_days: i64,
    pub notes: Option<String>,
}

/// Trims; an empty string becomes `None`.
fn clean(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

impl SupplierFields {
    /// Trims every text and checks every field, naming each invalid one.
    pub fn validate(self) -> Result<SupplierFields, ApiError> {
        let mut errors = Vec::new();
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 200 {
            errors.push(FieldError::new(
                "name",
                "length must be between 1 and 200 once trimmed",
            ));
        }
        let email = clean(self.email);
        if let Some(email) = &email {
            if email.len() > 254 || !email.validate_email() {
                errors.push(FieldError::new("email", "must be a valid email address"));
            }
        }
        let phone = clean(self.phone);
        if let Some(phone) = &phone {
            let digits = phone.chars().filter(char::is_ascii_digit).count();
            let allowed = phone
                .chars()
                .all(|c| c.is_ascii_digit() || " +-.()".contains(c));
            if !allowed || !(5..=20).contains(&digits) || phone.len() > 40 {
                errors.push(FieldError::new(
                    "phone",
                    "must be a phone number: 5 to 20 digits, optionally with + ( ) - . and spaces",
                ));
            }
        }
        let address = clean(self.address);
        if address.as_ref().is_some_and(|a| a.chars().count() > 1000) {
            errors.push(FieldError::new("address", "length must be at most 1000"));
        }
        if !(0..=365).contains(&self.lead_time_days) {
            errors.push(FieldError::new(
                "lead_time_days",
                "must be between 0 and 365",
            ));
        }
        let notes = clean(self.notes);
        if notes.as_ref().is_some_and(|n| n.chars().count() > 4000) {
            errors.push(FieldError::new("notes", "length must be at most 4000"));
        }
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        Ok(SupplierFields {
            name,
            email,
            phone,
            address,
            lead_time_days: self.lead_time_days,
            notes,
        })
    }
}

/// Query of `GET /suppliers`, by name.
#[derive(Debug, Clone, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SupplierQuery {
    /// Case-insensitive substring of the name or the email address.
    pub q: Option<String>,
    /// `true`: archived suppliers too (they are left out by default).
    pub include_archived: Option<bool>,
    #[param(minimum = 1, default = 1)]
    pub page: Option<i64>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub per_page: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// Purchase order state machine
// ---------------------------------------------------------------------------------------------

/// Where a purchase order is in its life.
///
/// ```text
/// draft --submit--> submitted --receive--> partially_received --receive--> received
///                             --receive (all of it)-------------------------^
/// draft|submitted --cancel--> cancelled          (a submitted order has no receipts yet)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[schema(example = "partially_received")]
#[serde(rename_all = "snake_case")]
pub enum PurchaseOrderStatus {
    /// Being prepared: lines, expected date and note can still change.
    Draft,
    /// Sent to the supplier; its quantities count as `on_order`.
    Submitted,
    /// Some copies have arrived; the rest still count as `on_order`.
    PartiallyReceived,
    /// Every line has arrived in full.
    Received,
    Cancelled,
}

impl PurchaseOrderStatus {
    pub const ALL: [PurchaseOrderStatus; 5] = [
        PurchaseOrderStatus::Draft,
        PurchaseOrderStatus::Submitted,
        PurchaseOrderStatus::PartiallyReceived,
        PurchaseOrderStatus::Received,
        PurchaseOrderStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PurchaseOrderStatus::Draft => "draft",
            PurchaseOrderStatus::Submitted => "submitted",
            PurchaseOrderStatus::PartiallyReceived => "partially_received",
            PurchaseOrderStatus::Received => "received",
            PurchaseOrderStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<PurchaseOrderStatus> {
        PurchaseOrderStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

impl crate::http::query::OneOf for PurchaseOrderStatus {
    fn all() -> &'static [Self] {
        &PurchaseOrderStatus::ALL
    }
    fn as_str(self) -> &'static str {
        PurchaseOrderStatus::as_str(self)
    }
}

/// Something that happens to a purchase order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[schema(example = "receive")]
#[serde(rename_all = "snake_case")]
pub enum PurchaseOrderAction {
    /// `PATCH`: change the expected date, the note or the lines.
    Edit,
    Submit,
    Cancel,
    Receive,
}

impl PurchaseOrderAction {
    pub const ALL: [PurchaseOrderAction; 4] = [
        PurchaseOrderAction::Edit,
        PurchaseOrderAction::Submit,
        PurchaseOrderAction::Cancel,
        PurchaseOrderAction::Receive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PurchaseOrderAction::Edit => "edit",
            PurchaseOrderAction::Submit => "submit",
            PurchaseOrderAction::Cancel => "cancel",
            PurchaseOrderAction::Receive => "receive",
        }
    }
}

/// The transition table: the one `match` every status change comes from. A receipt's target
/// depends on whether it completes the order (`complete`: every line received in full).
fn target(
    status: PurchaseOrderStatus,
    action: PurchaseOrderAction,
    complete: bool,
) -> Option<PurchaseOrderStatus> {
    use PurchaseOrderAction as A;
    use PurchaseOrderStatus as S;
    match (status, action) {
        (S::Draft, A::Edit) => Some(S::Draft),
        (S::Draft, A::Submit) => Some(S::Submitted),
        (S::Draft | S::Submitted, A::Cancel) => Some(S::Cancelled),
        (S::Submitted | S::PartiallyReceived, A::Receive) if complete => Some(S::Received),
        (S::Submitted | S::PartiallyReceived, A::Receive) => Some(S::PartiallyReceived),
        _ => None,
    }
}

/// The actions a purchase order in `status` allows, in [`PurchaseOrderAction::ALL`] order.
pub fn allowed_actions(status: PurchaseOrderStatus) -> Vec<PurchaseOrderAction> {
    PurchaseOrderAction::ALL
        .into_iter()
        .filter(|a| target(status, *a, false).is_some())
        .collect()
}

/// The status a purchase order in `status` moves to by `action`, or the 409 that names its
/// current status and what it allows instead.
pub fn next(
    status: PurchaseOrderStatus,
    action: PurchaseOrderAction,
    complete: bool,
) -> Result<PurchaseOrderStatus, ApiError> {
    target(status, action, complete).ok_or_else(|| {
        let allowed: Vec<String> = allowed_actions(status)
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect();
        ApiError::IllegalTransition {
            detail: format!(
                "cannot {} a purchase order that is {}; allowed now: {}",
                action.as_str(),
                status.as_str(),
                if allowed.is_empty() {
                    "nothing (the purchase order is final)".to_owned()
                } else {
                    allowed.join(", ")
                }
            ),
            current_status: status.as_str().to_owned(),
            allowed_actions: allowed,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Purchase orders
// ---------------------------------------------------------------------------------------------

/// A row of `purchase_orders`, in column order.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = purchase_orders)]
pub struct PurchaseOrderRow {
    pub id: i64,
    pub supplier_id: i64,
    pub status: String,
    pub currency: String,
    pub expected_on: Option<NaiveDate>,
    pub note: Option<String>,
    pub total_cents: i64,
    pub version: i32,
    pub created_by: Option<i64>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub submitted_at: Option<NaiveDateTime>,
    pub received_at: Option<NaiveDateTime>,
    pub cancelled_at: Option<NaiveDateTime>,
}

impl PurchaseOrderRow {
    pub fn status(&self) -> Result<PurchaseOrderStatus, ApiError> {
        PurchaseOrderStatus::parse(&self.status).ok_or_else(|| {
            ApiError::internal(format!(
                "purchase order {} has status {}",
                self.id, self.status
            ))
        })
    }
}

/// A row of `purchase_order_lines`, in column order.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = purchase_order_lines)]
pub struct PurchaseOrderLineRow {
    pub id: i64,
    pub purchase_order_id: i64,
    pub book_id: i64,
    pub quantity: i64,
    pub received_quantity: i64,
    pub unit_cost_cents: i64,
}

/// The columns of a `stock_receipts` row a purchase order shows.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = stock_receipts)]
pub struct ReceiptRefRow {
    pub id: i64,
    pub purchase_order_id: Option<i64>,
    pub note: Option<String>,
    pub user_id: Option<i64>,
    pub created_at: NaiveDateTime,
}

/// A line of `POST /purchase-orders` (and of a `PATCH` that replaces the lines).
#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[schema(example = json!({"book_id": 1, "quantity": 40, "unit_cost_cents": 950}))]
#[serde(deny_unknown_fields)]
pub struct PurchaseOrderLineInput {
    pub book_id: i64,
    /// Copies ordered, 1 to 100000.
    #[validate(range(min = 1, max = 100_000))]
    #[schema(minimum = 1, maximum = 100000)]
    pub quantity: i64,
    /// What one copy costs, in minor units of the store currency; at most 100000000 (the bound of
    /// `POST /inventory/receipts`, which keeps every total and stock value within range).
    #[validate(range(min = 0, max = 100_000_000))]
    #[schema(minimum = 0, maximum = 100000000)]
    pub unit_cost_cents: i64,
}

/// Body of `POST /purchase-orders`. The order starts as a `draft`.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[schema(example = json!({
    "supplier_id": 3, "expected_on": "2026-12-05", "note": "Christmas restock",
    "lines": [{"book_id": 1, "quantity": 40, "unit_cost_cents": 950},
              {"book_id": 2, "quantity": 12, "unit_cost_cents": 1200}]
}))]
#[serde(deny_unknown_fields)]
pub struct NewPurchaseOrder {
    /// An active (not archived) supplier.
    pub supplier_id: i64,
    /// 1 to 500 lines, each book at most once.
    #[validate(length(min = 1, max = 500), nested)]
    #[schema(min_items = 1, max_items = 500)]
    pub lines: Vec<PurchaseOrderLineInput>,
    /// When the delivery is expected; today plus the supplier's lead time when absent.
    pub expected_on: Option<NaiveDate>,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub note: Option<String>,
}

/// Body of `PATCH /purchase-orders/{id}` (drafts only): absent fields are kept, `null` clears
/// `expected_on` or `note`, `lines` replaces every line.
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[schema(example = json!({
    "expected_on": "2026-12-08",
    "lines": [{"book_id": 1, "quantity": 60, "unit_cost_cents": 930}]
}))]
#[serde(deny_unknown_fields)]
pub struct PurchaseOrderPatch {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<NaiveDate>)]
    pub expected_on: Option<Option<NaiveDate>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 2000)]
    pub note: Option<Option<String>>,
    /// 1 to 500 lines, each book at most once: replaces all lines.
    #[validate(length(min = 1, max = 500), nested)]
    #[schema(min_items = 1, max_items = 500)]
    pub lines: Option<Vec<PurchaseOrderLineInput>>,
}

impl PurchaseOrderPatch {
    /// The note's length, which the validator cannot reach inside the double option.
    pub fn check_note(&self) -> Result<(), ApiError> {
        match &self.note {
            Some(Some(note)) if note.chars().count() > 2000 => {
                Err(ApiError::invalid("note", "length must be at most 2000"))
            }
            _ => Ok(()),
        }
    }
}

/// One line of a receipt against a purchase order.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[schema(example = json!({"book_id": 1, "quantity": 25}))]
#[serde(deny_unknown_fields)]
pub struct ReceiveLineInput {
    /// A book on the purchase order.
    pub book_id: i64,
    /// Copies that arrived, 1 to 100000; at most the line's outstanding quantity unless
    /// `allow_over_receipt`.
    #[validate(range(min = 1, max = 100_000))]
    #[schema(minimum = 1, maximum = 100000)]
    pub quantity: i64,
}

/// Body of `POST /purchase-orders/{id}/receive`.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[schema(example = json!({
    "lines": [{"book_id": 1, "quantity": 25}, {"book_id": 2, "quantity": 12}],
    "note": "Delivery note 4471, one carton short"
}))]
#[serde(deny_unknown_fields)]
pub struct ReceivePurchaseOrder {
    /// 1 to 500 lines, each book at most once.
    #[validate(length(min = 1, max = 500), nested)]
    #[schema(min_items = 1, max_items = 500)]
    pub lines: Vec<ReceiveLineInput>,
    /// Accept more copies than are outstanding on a line (the supplier sent extra and the shop
    /// keeps them).
    #[serde(default)]
    pub allow_over_receipt: bool,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub note: Option<String>,
}

/// Query of `GET /purchase-orders`, newest first.
#[derive(Debug, Clone, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PurchaseOrderQuery {
    pub supplier_id: Option<i64>,
    /// `draft`, `submitted`, `partially_received`, `received` or `cancelled`.
    #[serde(default, deserialize_with = "crate::http::query::one_of")]
    #[param(inline)]
    pub status: Option<PurchaseOrderStatus>,
    /// Only orders with a line for this book.
    pub book_id: Option<i64>,
    #[param(minimum = 1, default = 1)]
    pub page: Option<i64>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub per_page: Option<i64>,
}

/// A line of a purchase order.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "book_id": 1, "title": "The Left Hand of Darkness", "isbn": "9780441478125",
    "quantity": 40, "received_quantity": 25, "outstanding": 15, "unit_cost_cents": 950,
    "line_total_cents": 38000
}))]
pub struct PurchaseOrderLineView {
    pub book_id: i64,
    pub title: String,
    pub isbn: String,
    /// Copies ordered.
    pub quantity: i64,
    /// Copies received so far (more than ordered only through an over-receipt).
    pub received_quantity: i64,
    /// `max(0, quantity − received_quantity)`: what is still expected.
    pub outstanding: i64,
    pub unit_cost_cents: i64,
    /// `quantity × unit_cost_cents`.
    pub line_total_cents: i64,
}

/// A receipt made against a purchase order.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"id": 7, "note": "Delivery note 4471, one carton short",
    "user_id": 2, "created_at": "2026-12-04T09:12:00Z"}))]
pub struct PurchaseOrderReceiptRef {
    /// The receipt id; its movements reference `receipt:<id>`.
    pub id: i64,
    pub note: Option<String>,
    /// Who recorded it.
    pub user_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// A purchase order with its lines and the receipts made against it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 12, "supplier_id": 3, "supplier_name": "Gollancz Distribution",
    "status": "partially_received", "currency": "USD", "expected_on": "2026-12-05",
    "note": "Christmas restock", "total_cents": 52400,
    "lines": [
        {"book_id": 1, "title": "The Left Hand of Darkness", "isbn": "9780441478125",
         "quantity": 40, "received_quantity": 25, "outstanding": 15, "unit_cost_cents": 950,
         "line_total_cents": 38000},
        {"book_id": 2, "title": "The Dispossessed", "isbn": "9780061054884",
         "quantity": 12, "received_quantity": 12, "outstanding": 0, "unit_cost_cents": 1200,
         "line_total_cents": 14400}],
    "receipts": [{"id": 7, "note": "Delivery note 4471, one carton short", "user_id": 2,
                  "created_at": "2026-12-04T09:12:00Z"}],
    "allowed_actions": ["receive"], "version": 4, "created_by": 2,
    "created_at": "2026-11-25T10:00:00Z", "updated_at": "2026-12-04T09:12:00Z",
    "submitted_at": "2026-11-25T10:05:00Z", "received_at": null, "cancelled_at": null
}))]
pub struct PurchaseOrderView {
    pub id: i64,
    pub supplier_id: i64,
    pub supplier_name: String,
    pub status: PurchaseOrderStatus,
    pub currency: String,
    pub expected_on: Option<NaiveDate>,
    pub note: Option<String>,
    /// Sum of the lines' totals.
    pub total_cents: i64,
    /// In the order they were given.
    pub lines: Vec<PurchaseOrderLineView>,
    /// Oldest first.
    pub receipts: Vec<PurchaseOrderReceiptRef>,
    /// What can be done with the order now.
    pub allowed_actions: Vec<PurchaseOrderAction>,
    /// Changes with every change to the order; send it back in `If-Match` to edit a draft.
    pub version: i32,
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
    /// When the last outstanding copies arrived.
    pub received_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
}

impl PurchaseOrderView {
    pub fn new(
        row: PurchaseOrderRow,
        supplier_name: String,
        lines: Vec<PurchaseOrderLineView>,
        receipts: Vec<PurchaseOrderReceiptRef>,
    ) -> Result<Self, ApiError> {
        let status = row.status()?;
        Ok(PurchaseOrderView {
            id: row.id,
            supplier_id: row.supplier_id,
            supplier_name,
            status,
            currency: row.currency,
            expected_on: row.expected_on,
            note: row.note,
            total_cents: row.total_cents,
            lines,
            receipts,
            allowed_actions: allowed_actions(status),
            version: row.version,
            created_by: row.created_by,
            created_at: utc(row.created_at),
            updated_at: utc(row.updated_at),
            submitted_at: row.submitted_at.map(utc),
            received_at: row.received_at.map(utc),
            cancelled_at: row.cancelled_at.map(utc),
        })
    }
}

/// What `POST /purchase-orders/{id}/receive` answers: the receipt (its lines, the `receipt`
/// movements and the resulting stock levels) and the purchase order after it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "receipt": {
        "id": 7, "supplier": "Gollancz Distribution",
        "note": "Delivery note 4471, one carton short", "user_id": 2,
        "total_cost_cents": 38150, "currency": "USD",
        "lines": [{"movement_id": 31, "book_id": 1, "quantity": 25, "unit_cost_cents": 950},
                  {"movement_id": 32, "book_id": 2, "quantity": 12, "unit_cost_cents": 1200}],
        "levels": [
            {"book_id": 1, "title": "The Left Hand of Darkness", "isbn": "9780441478125",
             "on_hand": 27, "reserved": 2, "available": 25, "reorder_point": 5,
             "reorder_quantity": 20, "low_stock": false, "on_order": 15,
             "avg_unit_cost_cents": 948, "stock_value_cents": 25596, "version": 9,
             "updated_at": "2026-12-04T09:12:00Z"},
            {"book_id": 2, "title": "The Dispossessed", "isbn": "9780061054884",
             "on_hand": 12, "reserved": 0, "available": 12, "reorder_point": 3,
             "reorder_quantity": 10, "low_stock": false, "on_order": 0,
             "avg_unit_cost_cents": 1200, "stock_value_cents": 14400, "version": 2,
             "updated_at": "2026-12-04T09:12:00Z"}],
        "created_at": "2026-12-04T09:12:00Z"
    },
    "purchase_order": {
        "id": 12, "supplier_id": 3, "supplier_name": "Gollancz Distribution",
        "status": "partially_received", "currency": "USD", "expected_on": "2026-12-05",
        "note": "Christmas restock", "total_cents": 52400,
        "lines": [
            {"book_id": 1, "title": "The Left Hand of Darkness", "isbn": "9780441478125",
             "quantity": 40, "received_quantity": 25, "outstanding": 15,
             "unit_cost_cents": 950, "line_total_cents": 38000},
            {"book_id": 2, "title": "The Dispossessed", "isbn": "9780061054884",
             "quantity": 12, "received_quantity": 12, "outstanding": 0,
             "unit_cost_cents": 1200, "line_total_cents": 14400}],
        "receipts": [{"id": 7, "note": "Delivery note 4471, one carton short", "user_id": 2,
                      "created_at": "2026-12-04T09:12:00Z"}],
        "allowed_actions": ["receive"], "version": 4, "created_by": 2,
        "created_at": "2026-11-25T10:00:00Z", "updated_at": "2026-12-04T09:12:00Z",
        "submitted_at": "2026-11-25T10:05:00Z", "received_at": null, "cancelled_at": null
    }
}))]
pub struct PurchaseOrderReceiptView {
    pub receipt: ReceiptView,
    pub purchase_order: PurchaseOrderView,
}

#[cfg(test)]
mod tests {
    use super::*;
    use PurchaseOrderAction as A;
    use PurchaseOrderStatus as S;

    /// Every (status, action) pair: the target of a partial and of a completing receipt.
    #[test]
    fn every_transition_is_in_the_table() {
        #[rustfmt::skip]
        let table: &[(S, A, Option<S>, Option<S>)] = &[
            // status               action      partial                       complete
            (S::Draft,              A::Edit,    Some(S::Draft),               Some(S::Draft)),
            (S::Draft,              A::Submit,  Some(S::Submitted),           Some(S::Submitted)),
            (S::Draft,              A::Cancel,  Some(S::Cancelled),           Some(S::Cancelled)),
            (S::Draft,              A::Receive, None,                         None),
            (S::Submitted,          A::Edit,    None,                         None),
            (S::Submitted,          A::Submit,  None,                         None),
            (S::Submitted,          A::Cancel,  Some(S::Cancelled),           Some(S::Cancelled)),
            (S::Submitted,          A::Receive, Some(S::PartiallyReceived),   Some(S::Received)),
            (S::PartiallyReceived,  A::Edit,    None,                         None),
            (S::PartiallyReceived,  A::Submit,  None,                         None),
            // Stock has arrived: nothing to cancel any more.
            (S::PartiallyReceived,  A::Cancel,  None,                         None),
            (S::PartiallyReceived,  A::Receive, Some(S::PartiallyReceived),   Some(S::Received)),
            (S::Received,           A::Edit,    None,                         None),
            (S::Received,           A::Submit,  None,                         None),
            (S::Received,           A::Cancel,  None,                         None),
            (S::Received,           A::Receive, None,                         None),
            (S::Cancelled,          A::Edit,    None,                         None),
            (S::Cancelled,          A::Submit,  None,                         None),
            (S::Cancelled,          A::Cancel,  None,                         None),
            (S::Cancelled,          A::Receive, None,                         None),
        ];
        assert_eq!(table.len(), S::ALL.len() * A::ALL.len(), "every pair once");
        for &(status, action, partial, complete) in table {
            for (is_complete, expected) in [(false, partial), (true, complete)] {
                let got = next(status, action, is_complete);
                assert_eq!(
                    got.as_ref().ok().copied(),
                    expected,
                    "{status:?} {action:?}"
                );
                assert_eq!(
                    allowed_actions(status).contains(&action),
                    expected.is_some(),
                    "{status:?} {action:?}"
                );
            }
        }
    }

    #[test]
    fn an_illegal_move_is_a_409_naming_the_current_status() {
        let problem = next(S::PartiallyReceived, A::Cancel, false)
            .unwrap_err()
            .to_problem();
        assert_eq!(problem.status, 409);
        assert_eq!(
            problem.current_status.as_deref(),
            Some("partially_received")
        );
        assert_eq!(problem.allowed_actions, Some(vec!["receive".to_owned()]));
        let problem = next(S::Received, A::Receive, true)
            .unwrap_err()
            .to_problem();
        assert_eq!(problem.allowed_actions, Some(vec![]));
        assert!(problem.detail.contains("final"), "{}", problem.detail);
    }

    #[test]
    fn statuses_round_trip() {
        for s in S::ALL {
            assert_eq!(S::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn supplier_fields_are_trimmed_and_checked() {
        let fields = SupplierFields {
            name: "  Gollancz  ".into(),
            email: Some(" ".into()),
            phone: Some(" +44 20 7946 0000 ".into()),
            address: None,
            lead_time_days: 0,
            notes: Some("".into()),
        }
        .validate()
        .unwrap();
        assert_eq!(fields.name, "Gollancz");
        assert_eq!(fields.email, None);
        assert_eq!(fields.phone.as_deref(), Some("+44 20 7946 0000"));
        assert_eq!(fields.notes, None);
        let bad = SupplierFields {
            name: "   ".into(),
            email: Some("not-an-email".into()),
            phone: Some("call me".into()),
            address: None,
            lead_time_days: 366,
            notes: None,
        }
        .validate()
        .unwrap_err()
        .to_problem();
        let fields: Vec<&str> = bad.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "email", "phone", "lead_time_days"]);
    }
}
