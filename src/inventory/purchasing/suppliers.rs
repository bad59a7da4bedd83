//! Supplier rules: create, change, list, and remove — a supplier with purchase orders is archived
//! rather than deleted, so that its orders keep their history; an archived supplier takes no new
//! orders and frees its name.

use crate::catalog::authors::escape_like;
use crate::db::schema::{purchase_orders, suppliers};
use crate::db::{now, write_transaction, DbConn};
use crate::error::ApiError;
use crate::http::{Page, PageParams};
use crate::inventory::purchasing::model::*;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{Bool, Text};

fn not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("no supplier with id {id}"))
}

fn stale(current: i32) -> ApiError {
    ApiError::PreconditionFailed(format!(
        "the supplier has changed since you read it (current version {current}); fetch it again"
    ))
}

fn name_taken(name: &str, holder: Option<i64>) -> ApiError {
    ApiError::Conflict(match holder {
        Some(id) => format!(
            "name: an active supplier named '{name}' already exists (id {id}); names are unique \
             among active suppliers, ignoring case"
        ),
        None => format!(
            "name: an active supplier named '{name}' already exists; names are unique among \
             active suppliers, ignoring case"
        ),
    })
}

/// The unique index on active names, raced by a concurrent write, reads as the same 409 as the
/// check before it.
fn map_write_error(err: DieselError, name: &str) -> ApiError {
    match err {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => name_taken(name, None),
        other => other.into(),
    }
}

/// The active supplier other than `except` named `name` (ignoring case, as the unique index
/// does on each backend: both sides are lower-cased by the database).
fn name_holder(
    conn: &mut DbConn,
    name: &str,
    except: Option<i64>,
) -> Result<Option<i64>, ApiError> {
    let mut q = suppliers::table
        .filter(suppliers::archived_at.is_null())
        .filter(
            diesel::dsl::sql::<Bool>("lower(suppliers.name) = lower(")
                .bind::<Text, _>(name.to_owned())
                .sql(")"),
        )
        .select(suppliers::id)
        .into_boxed();
    if let Some(except) = except {
        q = q.filter(suppliers::id.ne(except));
    }
    Ok(q.first(conn).optional()?)
}

pub(crate) fn row(conn: &mut DbConn, id: i64) -> Result<SupplierRow, ApiError> {
    suppliers::table
        .find(id)
        .select(SupplierRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| not_found(id))
}

pub fn get_supplier(conn: &mut DbConn, id: i64) -> Result<SupplierView, ApiError> {
    row(conn, id).map(SupplierView::from)
}

/// Creates a supplier; its name must not be taken by an active supplier (409).
pub fn create_supplier(conn: &mut DbConn, input: &NewSupplier) -> Result<SupplierView, ApiError> {
    let f = input.fields().validate()?;
    let lead_time = i32::try_from(f.lead_time_days).map_err(ApiError::internal)?;
    write_transaction(conn, |tx| {
        if let Some(holder) = name_holder(tx, &f.name, None)? {
            return Err(name_taken(&f.name, Some(holder)));
        }
        let at = now();
        let row: SupplierRow = diesel::insert_into(suppliers::table)
            .values((
                suppliers::name.eq(&f.name),
                suppliers::email.eq(&f.email),
                suppliers::phone.eq(&f.phone),
                suppliers::address.eq(&f.address),
                suppliers::lead_time_days.eq(lead_time),
                suppliers::notes.eq(&f.notes),
                suppliers::version.eq(1),
                suppliers::created_at.eq(at),
                suppliers::updated_at.eq(at),
            ))
            .returning(suppliers::all_columns)
            .get_result(tx.conn())
            .map_err(|e| map_write_error(e, &f.name))?;
        Ok(row.into())
    })
}

/// Applies a patch if the supplier is still at `expected_version` (412 otherwise); `None`
/// accepts whatever version is current (`If-Match: *`). A new name must be free among active
/// suppliers (409).
pub fn update_supplier(
    conn: &mut DbConn,
    id: i64,
    expected_version: Option<i32>,
    patch: &SupplierPatch,
) -> Result<SupplierView, ApiError> {
    write_transaction(conn, |tx| {
        let current = row(tx, id)?;
        let expected = expected_version.unwrap_or(current.version);
        if current.version != expected {
            return Err(stale(current.version));
        }
        let f = patch.apply(current.fields()).validate()?;
        let lead_time = i32::try_from(f.lead_time_days).map_err(ApiError::internal)?;
        if current.archived_at.is_none() {
            if let Some(holder) = name_holder(tx, &f.name, Some(id))? {
                return Err(name_taken(&f.name, Some(holder)));
            }
        }
        let updated: Option<SupplierRow> = diesel::update(
            suppliers::table
                .filter(suppliers::id.eq(id))
                .filter(suppliers::version.eq(expected)),
        )
        .set((
            suppliers::name.eq(&f.name),
            suppliers::email.eq(&f.email),
            suppliers::phone.eq(&f.phone),
            suppliers::address.eq(&f.address),
            suppliers::lead_time_days.eq(lead_time),
            suppliers::notes.eq(&f.notes),
            suppliers::version.eq(expected + 1),
            suppliers::updated_at.eq(now()),
        ))
        .returning(suppliers::all_columns)
        .get_result(tx.conn())
        .optional()
        .map_err(|e| map_write_error(e, &f.name))?;
        updated
            .map(SupplierView::from)
            .ok_or_else(|| stale(expected))
    })
}

/// What `DELETE /suppliers/{id}` did.
pub enum Removal {
    Deleted,
    Archived(Box<SupplierView>),
}

/// Deletes a supplier without purchase orders; archives one with purchase orders (again, if it
/// already is: the answer is the archived supplier either way).
pub fn delete_supplier(conn: &mut DbConn, id: i64) -> Result<Removal, ApiError> {
    write_transaction(conn, |tx| {
        // Taking the row first (a conditional write that changes nothing) serialises this with
        // a purchase order being created for the supplier, which takes the same row: so the
        // count below sees it.
        let locked: Option<SupplierRow> = diesel::update(suppliers::table.find(id))
            .set(suppliers::version.eq(suppliers::version))
            .returning(suppliers::all_columns)
            .get_result(tx.conn())
            .optional()?;
        let locked = locked.ok_or_else(|| not_found(id))?;
        let orders: i64 = purchase_orders::table
            .filter(purchase_orders::supplier_id.eq(id))
            .count()
            .get_result(tx.conn())?;
        if orders == 0 {
            diesel::delete(suppliers::table.find(id)).execute(tx.conn())?;
            return Ok(Removal::Deleted);
        }
        if locked.archived_at.is_some() {
            return Ok(Removal::Archived(Box::new(locked.into())));
        }
        let at = now();
        let archived: SupplierRow = diesel::update(suppliers::table.find(id))
            .set((
                suppliers::archived_at.eq(at),
                suppliers::version.eq(locked.version + 1),
                suppliers::updated_at.eq(at),
            ))
            .returning(suppliers::all_columns)
            .get_result(tx.conn())?;
        Ok(Removal::Archived(Box::new(archived.into())))
    })
}

/// Lists suppliers by name (case-insensitively), active ones only unless `include_archived`.
pub fn list_suppliers(
    conn: &mut DbConn,
    query: &SupplierQuery,
) -> Result<Page<SupplierView>, ApiError> {
    let (page, per_page) = PageParams {
        page: query.page,
        per_page: query.per_page,
    }
    .resolve()?;
    let pattern = query
        .q
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(|q| format!("%{}%", escape_like(q)));
    let include_archived = query.include_archived.unwrap_or(false);
    let filtered = || {
        let mut q = suppliers::table.into_boxed();
        if !include_archived {
            q = q.filter(suppliers::archived_at.is_null());
        }
        if let Some(pattern) = &pattern {
            // Lower-cased by the database on both sides (see `authors::list_authors`).
            q = q.filter(
                diesel::dsl::sql::<Bool>("(lower(suppliers.name) LIKE lower(")
                    .bind::<Text, _>(pattern.clone())
                    .sql(") ESCAPE '\\' OR lower(COALESCE(suppliers.email, '')) LIKE lower(")
                    .bind::<Text, _>(pattern.clone())
                    .sql(") ESCAPE '\\')"),
            );
        }
        q
    };
    let total: i64 = filtered().count().get_result(conn)?;
    let rows: Vec<SupplierRow> = filtered()
        .order((
            diesel::dsl::sql::<Text>("lower(suppliers.name)"),
            suppliers::id,
        ))
        .limit(per_page)
        .offset(Page::<SupplierView>::offset(page, per_page))
        .select(SupplierRow::as_select())
        .load(conn)?;
    Ok(Page {
        items: rows.into_iter().map(SupplierView::from).collect(),
        page,
        per_page,
        total,
    })
}
