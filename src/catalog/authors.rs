//! Author rules. Renaming an author re-indexes their books, since searches match author names.

use crate::catalog::model::*;
use crate::catalog::search::{self, Reindex};
use crate::db::schema::{authors, book_authors};
use crate::db::{now, write_transaction, DbConn};
use crate::error::ApiError;
use crate::http::{Page, PageParams};
use diesel::prelude::*;

fn not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("no author with id {id}"))
}

fn book_count(conn: &mut DbConn, id: i64) -> QueryResult<i64> {
    book_authors::table
        .filter(book_authors::author_id.eq(id))
        .select(diesel::dsl::count(book_authors::book_id).aggregate_distinct())
        .first(conn)
}

fn view(conn: &mut DbConn, row: AuthorRow) -> Result<AuthorView, ApiError> {
    Ok(AuthorView {
        book_count: book_count(conn, row.id)?,
        id: row.id,
        name: row.name,
        bio: row.bio,
        created_at: utc(row.created_at),
        updated_at: utc(row.updated_at),
    })
}

fn row(conn: &mut DbConn, id: i64) -> Result<AuthorRow, ApiError> {
    authors::table
        .find(id)
        .select(AuthorRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| not_found(id))
}

pub fn get_author(conn: &mut DbConn, id: i64) -> Result<AuthorView, ApiError> {
    let row = row(conn, id)?;
    view(conn, row)
}

/// Names are compared case-insensitively; `lower()` works the same on both backends for ASCII.
pub fn list_authors(conn: &mut DbConn, query: &AuthorQuery) -> Result<Page<AuthorView>, ApiError> {
    let (page, per_page) = PageParams {
        page: query.page,
        per_page: query.per_page,
    }
    .resolve()?;
    // Lower-cased by the database on both sides: SQLite's `lower()` only folds ASCII, so a needle
    // lower-cased in Rust would never match a stored "Émile".
    let needle = query
        .q
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(|q| format!("%{}%", escape_like(q)));
    let filtered = || {
        let mut q = authors::table.into_boxed();
        if let Some(n) = &needle {
            q = q.filter(
                diesel::dsl::sql::<diesel::sql_types::Bool>("lower(authors.name) LIKE lower(")
                    .bind::<diesel::sql_types::Text, _>(n.clone())
                    .sql(") ESCAPE '\\'"),
            );
        }
        q
    };
    let total: i64 = filtered().count().get_result(conn)?;
    let rows: Vec<AuthorRow> = filtered()
        // Case-insensitive, so both backends list "alice" and "Bob" in the same order.
        .order((
            diesel::dsl::sql::<diesel::sql_types::Text>("lower(authors.name)"),
            authors::id,
        ))
        .limit(per_page)
        .offset(Page::<AuthorView>::offset(page, per_page))
        .select(AuthorRow::as_select())
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

/// Escapes LIKE wildcards so user input matches literally.
pub fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn clean_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::invalid("name", "must not be blank"));
    }
    Ok(name.to_owned())
}

pub fn create_author(conn: &mut DbConn, input: &NewAuthor) -> Result<AuthorView, ApiError> {
    let name = clean_name(&input.name)?;
    let bio = input
        .bio
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty());
    let at = now();
    let id = write_transaction(conn, |tx| {
        diesel::insert_into(authors::table)
            .values((
                authors::name.eq(&name),
                authors::bio.eq(bio),
                authors::created_at.eq(at),
                authors::updated_at.eq(at),
            ))
            .returning(authors::id)
            .get_result::<i64>(tx.conn())
    })?;
    get_author(conn, id)
}

pub fn update_author(
    conn: &mut DbConn,
    id: i64,
    patch: &AuthorPatch,
) -> Result<AuthorView, ApiError> {
    let name = patch.name.as_deref().map(clean_name).transpose()?;
    write_transaction(conn, |tx| {
        let current = row(tx, id)?;
        let bio = match &patch.bio {
            Some(b) => b
                .as_deref()
                .map(str::trim)
                .filter(|b| !b.is_empty())
                .map(str::to_owned),
            None => current.bio.clone(),
        };
        let renamed = name.as_ref().is_some_and(|n| *n != current.name);
        diesel::update(authors::table.find(id))
            .set((
                authors::name.eq(name.as_ref().unwrap_or(&current.name)),
                authors::bio.eq(bio),
                authors::updated_at.eq(now()),
            ))
            .execute(tx.conn())?;
        if renamed {
            search::reindex(tx, Reindex::BooksOfAuthor(id))?;
        }
        Ok::<_, ApiError>(())
    })?;
    get_author(conn, id)
}

/// An author credited on any book cannot be deleted (409).
pub fn delete_author(conn: &mut DbConn, id: i64) -> Result<(), ApiError> {
    write_transaction(conn, |tx| {
        row(tx, id)?;
        let books = book_count(tx, id)?;
        if books > 0 {
            return Err(ApiError::Conflict(format!(
                "the author is credited on {books} book(s); remove those credits first"
            )));
        }
        diesel::delete(authors::table.find(id)).execute(tx.conn())?;
        Ok(())
    })
}
