//! The category tree: a category has an optional parent; cycles are refused, and a category
//! with children or books cannot be deleted.

use crate::catalog::model::*;
use crate::db::schema::{book_categories, categories};
use crate::db::{now, write_transaction, DbConn};
use crate::error::ApiError;
use crate::http::{Page, PageParams};
use diesel::prelude::*;

fn not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("no category with id {id}"))
}

fn row(conn: &mut DbConn, id: i64) -> Result<CategoryRow, ApiError> {
    categories::table
        .find(id)
        .select(CategoryRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| not_found(id))
}

fn view(conn: &mut DbConn, row: CategoryRow) -> Result<CategoryView, ApiError> {
    let children = categories::table
        .filter(categories::parent_id.eq(row.id))
        .order(categories::id)
        .select(categories::id)
        .load(conn)?;
    let book_count = book_categories::table
        .filter(book_categories::category_id.eq(row.id))
        .count()
        .get_result(conn)?;
    Ok(CategoryView {
        id: row.id,
        name: row.name,
        description: row.description,
        parent_id: row.parent_id,
        children,
        book_count,
        created_at: utc(row.created_at),
        updated_at: utc(row.updated_at),
    })
}

pub fn get_category(conn: &mut DbConn, id: i64) -> Result<CategoryView, ApiError> {
    let row = row(conn, id)?;
    view(conn, row)
}

pub fn list_categories(
    conn: &mut DbConn,
    query: &CategoryQuery,
) -> Result<Page<CategoryView>, ApiError> {
    let (page, per_page) = PageParams {
        page: query.page,
        per_page: Some(query.per_page.unwrap_or(100)),
    }
    .resolve()?;
    let filtered = || {
        let mut q = categories::table.into_boxed();
        match query.parent_id {
            Some(0) => q = q.filter(categories::parent_id.is_null()),
            Some(parent) => q = q.filter(categories::parent_id.eq(parent)),
            None => {}
        }
        q
    };
    let total: i64 = filtered().count().get_result(conn)?;
    let rows: Vec<CategoryRow> = filtered()
        // Case-insensitive, so both backends list names in the same order.
        .order((
            diesel::dsl::sql::<diesel::sql_types::Text>("lower(categories.name)"),
            categories::id,
        ))
        .limit(per_page)
        .offset(Page::<CategoryView>::offset(page, per_page))
        .select(CategoryRow::as_select())
        .load(conn)?;
    let items = rows
        .into_iter()
        .map(|r| view(conn, r))
        .collect::<Result<_, _>>()?;
    Ok(Page {
        items,
        page,
        per_page,
        total,
    })
}

fn clean_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::invalid("name", "must not be blank"));
    }
    Ok(name.to_owned())
}

/// Sibling names are unique (case-insensitively): a clear 409 rather than a constraint error.
fn ensure_name_free(
    conn: &mut DbConn,
    name: &str,
    parent_id: Option<i64>,
    except: Option<i64>,
) -> Result<(), ApiError> {
    let mut q = categories::table
        .filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>("lower(categories.name) = lower(")
                .bind::<diesel::sql_types::Text, _>(name.to_owned())
                .sql(")"),
        )
        .select(categories::id)
        .into_boxed();
    q = match parent_id {
        Some(p) => q.filter(categories::parent_id.eq(p)),
        None => q.filter(categories::parent_id.is_null()),
    };
    let clash: Option<i64> = q.first(conn).optional()?;
    match clash {
        Some(id) if Some(id) != except => Err(ApiError::Conflict(format!(
            "a category named '{name}' already exists at that level (id {id})"
        ))),
        _ => Ok(()),
    }
}

fn ensure_parent_exists(conn: &mut DbConn, parent_id: Option<i64>) -> Result<(), ApiError> {
    if let Some(parent) = parent_id {
        let exists: i64 = categories::table
            .filter(categories::id.eq(parent))
            .count()
            .get_result(conn)?;
        if exists == 0 {
            return Err(ApiError::invalid(
                "parent_id",
                format!("no category with id {parent}"),
            ));
        }
    }
    Ok(())
}

pub fn create_category(conn: &mut DbConn, input: &NewCategory) -> Result<CategoryView, ApiError> {
    let name = clean_name(&input.name)?;
    let description = input
        .description
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty());
    let id = write_transaction(conn, |tx| {
        ensure_parent_exists(tx, input.parent_id)?;
        ensure_name_free(tx, &name, input.parent_id, None)?;
        let at = now();
        Ok::<_, ApiError>(
            diesel::insert_into(categories::table)
                .values((
                    categories::name.eq(&name),
                    categories::description.eq(description),
                    categories::parent_id.eq(input.parent_id),
                    categories::created_at.eq(at),
                    categories::updated_at.eq(at),
                ))
                .returning(categories::id)
                .get_result::<i64>(tx.conn())?,
        )
    })?;
    get_category(conn, id)
}

/// Whether `candidate` is `id` itself or one of its descendants.
fn is_in_subtree(conn: &mut DbConn, id: i64, candidate: i64) -> Result<bool, ApiError> {
    let mut current = Some(candidate);
    // Walk up from the candidate; the tree is acyclic, and the bound guards against bad data.
    for _ in 0..10_000 {
        match current {
            Some(c) if c == id => return Ok(true),
            Some(c) => {
                current = categories::table
                    .find(c)
                    .select(categories::parent_id)
                    .first::<Option<i64>>(conn)
                    .optional()?
                    .flatten();
            }
            None => return Ok(false),
        }
    }
    Ok(true)
}

pub fn update_category(
    conn: &mut DbConn,
    id: i64,
    patch: &CategoryPatch,
) -> Result<CategoryView, ApiError> {
    let name = patch.name.as_deref().map(clean_name).transpose()?;
    write_transaction(conn, |tx| {
        let current = row(tx, id)?;
        let parent_id = patch.parent_id.unwrap_or(current.parent_id);
        if let Some(parent) = parent_id {
            ensure_parent_exists(tx, Some(parent))?;
            if is_in_subtree(tx, id, parent)? {
                return Err(ApiError::invalid(
                    "parent_id",
                    "cannot be the category itself or one of its sub-categories",
                ));
            }
        }
        let name = name.unwrap_or(current.name);
        ensure_name_free(tx, &name, parent_id, Some(id))?;
        let description = match &patch.description {
            Some(d) => d
                .as_deref()
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
            None => current.description,
        };
        diesel::update(categories::table.find(id))
            .set((
                categories::name.eq(&name),
                categories::description.eq(description),
                categories::parent_id.eq(parent_id),
                categories::updated_at.eq(now()),
            ))
            .execute(tx.conn())?;
        Ok::<_, ApiError>(())
    })?;
    get_category(conn, id)
}

/// Refuses (409) while the category has sub-categories or books.
pub fn delete_category(conn: &mut DbConn, id: i64) -> Result<(), ApiError> {
    write_transaction(conn, |tx| {
        let current = row(tx, id)?;
        let view = view(tx, current)?;
        if !view.children.is_empty() {
            return Err(ApiError::Conflict(format!(
                "the category has {} sub-categories; move or delete them first",
                view.children.len()
            )));
        }
        if view.book_count > 0 {
            return Err(ApiError::Conflict(format!(
                "{} book(s) are filed under the category; re-file them first",
                view.book_count
            )));
        }
        diesel::delete(categories::table.find(id)).execute(tx.conn())?;
        Ok(())
    })
}
