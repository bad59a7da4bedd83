//! Book rules: create, read, update with optimistic concurrency, delete or archive.

use crate::catalog::cache::SearchCache;
use crate::catalog::isbn::Isbn;
use crate::catalog::model::*;
use crate::catalog::search::{self, BookFilter, Reindex, Sort, TextQuery};
use crate::db::schema::{
    authors, book_authors, book_categories, books, categories, order_lines, purchase_order_lines,
    stock_levels, stock_movements, stocktake_lines,
};
use crate::db::{now, write_transaction, DbConn};
use crate::error::{ApiError, FieldError};
use crate::http::query::OneOf;
use crate::http::{Page, PageParams};
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use std::collections::HashMap;

/// Loads the views of `ids`, in the order given; unknown ids are skipped.
pub fn load_views(
    conn: &mut DbConn,
    ids: &[i64],
    currency: &str,
) -> Result<Vec<BookView>, ApiError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // The stock level rides along in the same query (a book lacking one shows 0 available).
    let rows: Vec<(BookRow, Option<(i64, i64)>)> = books::table
        .left_join(stock_levels::table)
        .filter(books::id.eq_any(ids))
        .select((
            BookRow::as_select(),
            (stock_levels::on_hand, stock_levels::reserved).nullable(),
        ))
        .load(conn)?;
    // Contributors and categories in one round trip: (book, kind, id, name, role, position),
    // kind 0 for a contributor, 1 for a category. UNION is not available on the multi-backend
    // connection, so the same query runs on the inner one.
    let links: Vec<(i64, i32, i64, String, String, i32)> = crate::per_backend!(conn, |c| {
        book_authors::table
            .inner_join(authors::table)
            .filter(book_authors::book_id.eq_any(ids))
            .select((
                book_authors::book_id,
                0.into_sql::<Integer>(),
                authors::id,
                authors::name,
                book_authors::role,
                book_authors::position,
            ))
            .union_all(
                book_categories::table
                    .inner_join(categories::table)
                    .filter(book_categories::book_id.eq_any(ids))
                    .select((
                        book_categories::book_id,
                        1.into_sql::<Integer>(),
                        categories::id,
                        categories::name,
                        "".into_sql::<Text>(),
                        0.into_sql::<Integer>(),
                    )),
            )
            .load(c)
    })?;

    let mut by_id: HashMap<i64, BookView> = rows
        .into_iter()
        .map(|(row, stock)| {
            let available = stock.map_or(0, |(on_hand, reserved)| on_hand - reserved);
            (row.id, view_of(row, available, currency))
        })
        .collect();
    let mut contributors: Vec<_> = links.iter().filter(|l| l.1 == 0).collect();
    contributors.sort_by_key(|l| (l.0, l.5));
    for (book_id, _, id, name, role, _) in contributors {
        if let Some(view) = by_id.get_mut(book_id) {
            view.authors.push(BookAuthorView {
                id: *id,
                name: name.clone(),
                role: AuthorRole::parse(role).unwrap_or_default(),
            });
        }
    }
    // Categories by name, case-insensitively, the same on both backends.
    let mut filed_under: Vec<_> = links.iter().filter(|l| l.1 == 1).collect();
    filed_under.sort_by_cached_key(|l| (l.0, l.3.to_lowercase(), l.2));
    for (book_id, _, id, name, _, _) in filed_under {
        if let Some(view) = by_id.get_mut(book_id) {
            view.categories.push(BookCategoryView {
                id: *id,
                name: name.clone(),
            });
        }
    }
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

fn view_of(row: BookRow, available: i64, currency: &str) -> BookView {
    let isbn10 = Isbn::parse(&row.isbn).ok().and_then(|i| i.to_isbn10());
    BookView {
        id: row.id,
        isbn: row.isbn,
        isbn10,
        title: row.title,
        subtitle: row.subtitle,
        description: row.description,
        language: row.language,
        publisher: row.publisher,
        publication_date: row.publication_date,
        page_count: row.page_count,
        format: BookFormat::parse(&row.format).unwrap_or(BookFormat::Paperback),
        list_price_cents: row.list_price_cents,
        currency: currency.to_owned(),
        available,
        cover_url: row.cover_url,
        status: if row.status == "archived" {
            BookStatus::Archived
        } else {
            BookStatus::Active
        },
        version: row.version,
        authors: Vec::new(),
        categories: Vec::new(),
        created_at: utc(row.created_at),
        updated_at: utc(row.updated_at),
    }
}

fn not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("no book with id {id}"))
}

pub fn get_book(conn: &mut DbConn, id: i64, currency: &str) -> Result<BookView, ApiError> {
    load_views(conn, &[id], currency)?
        .pop()
        .ok_or_else(|| not_found(id))
}

pub fn get_by_isbn(conn: &mut DbConn, isbn: &Isbn, currency: &str) -> Result<BookView, ApiError> {
    let id = books::table
        .filter(books::isbn.eq(isbn.as_str()))
        .select(books::id)
        .first::<i64>(conn)
        .optional()?
        .ok_or_else(|| ApiError::NotFound(format!("no book with ISBN {isbn}")))?;
    get_book(conn, id, currency)
}

/// Turns the query string into search criteria, naming any parameter that is off.
pub fn filter_of(query: &BookQuery) -> Result<(BookFilter, Sort, i64, i64), ApiError> {
    let (page, per_page) = PageParams {
        page: query.page,
        per_page: query.per_page,
    }
    .resolve()?;
    let text = query.q.as_deref().and_then(TextQuery::parse);
    let sort = Sort::parse(query.sort.map(OneOf::as_str), text.is_some())?;
    let status = match query.status.unwrap_or(BookStatusFilter::Active) {
        BookStatusFilter::Active => Some("active"),
        BookStatusFilter::Archived => Some("archived"),
        BookStatusFilter::Any => None,
    };
    let language = query.language.as_ref().map(|l| l.as_str().to_owned());
    for (field, value) in [
        ("min_price_cents", query.min_price_cents),
        ("max_price_cents", query.max_price_cents),
    ] {
        if value.is_some_and(|v| v < 0) {
            return Err(ApiError::invalid(field, "must not be negative"));
        }
    }
    if let (Some(min), Some(max)) = (query.min_price_cents, query.max_price_cents) {
        if min > max {
            return Err(ApiError::invalid(
                "min_price_cents",
                "must not exceed max_price_cents",
            ));
        }
    }
    let filter = BookFilter {
        text,
        author_id: query.author_id,
        category_id: query.category_id,
        language,
        format: query.format,
        min_price_cents: query.min_price_cents,
        max_price_cents: query.max_price_cents,
        status,
        in_stock: query.in_stock.unwrap_or(false),
    };
    Ok((filter, sort, page, per_page))
}

/// Searches or lists books; the page of ids comes from `cache` when a fresh copy is there.
pub fn list_books(
    conn: &mut DbConn,
    query: &BookQuery,
    currency: &str,
    cache: &SearchCache,
) -> Result<Page<BookView>, ApiError> {
    let (filter, sort, page, per_page) = filter_of(query)?;
    let key = format!("{filter:?}|{sort:?}|{page}|{per_page}");
    // Stock changes do not invalidate the search cache, so stock-filtered searches bypass it.
    let cached = if filter.in_stock {
        None
    } else {
        cache.get(&key)
    };
    let (ids, total) = match cached {
        Some(hit) => (hit.0.clone(), hit.1),
        None => {
            let ticket = cache.ticket();
            let offset = Page::<BookView>::offset(page, per_page);
            let (ids, total) = search::search(conn, &filter, sort, per_page, offset)?;
            if !filter.in_stock {
                cache.put(key, ticket, ids.clone(), total);
            }
            (ids, total)
        }
    };
    Ok(Page {
        items: load_views(conn, &ids, currency)?,
        page,
        per_page,
        total,
    })
}

/// Authors and categories a book links to must exist: a 422 names each missing one.
pub fn check_links_exist(
    conn: &mut DbConn,
    contributors: &[BookAuthorInput],
    category_ids: &[i64],
) -> Result<(), ApiError> {
    let mut errors = check_links(contributors, category_ids);
    let author_ids: Vec<i64> = contributors.iter().map(|a| a.author_id).collect();
    if !author_ids.is_empty() {
        let found: Vec<i64> = authors::table
            .filter(authors::id.eq_any(&author_ids))
            .select(authors::id)
            .load(conn)?;
        for (i, id) in author_ids.iter().enumerate() {
            if !found.contains(id) {
                errors.push(FieldError::new(
                    format!("authors[{i}].author_id"),
                    format!("no author with id {id}"),
                ));
            }
        }
    }
    if !category_ids.is_empty() {
        let found: Vec<i64> = categories::table
            .filter(categories::id.eq_any(category_ids))
            .select(categories::id)
            .load(conn)?;
        for (i, id) in category_ids.iter().enumerate() {
            if !found.contains(id) {
                errors.push(FieldError::new(
                    format!("category_ids[{i}]"),
                    format!("no category with id {id}"),
                ));
            }
        }
    }
    into_validation(errors)
}

/// Which links of a book are being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// The book was just inserted: it has none to remove.
    New,
    Replace,
}

/// Writes a book's contributors (in the given order) and categories, replacing those given.
pub fn write_links(
    conn: &mut DbConn,
    book_id: i64,
    mode: Links,
    contributors: Option<&[BookAuthorInput]>,
    category_ids: Option<&[i64]>,
) -> Result<(), ApiError> {
    if let Some(contributors) = contributors {
        if mode == Links::Replace {
            diesel::delete(book_authors::table.filter(book_authors::book_id.eq(book_id)))
                .execute(conn)?;
        }
        for (position, a) in contributors.iter().enumerate() {
            diesel::insert_into(book_authors::table)
                .values((
                    book_authors::book_id.eq(book_id),
                    book_authors::author_id.eq(a.author_id),
                    book_authors::position.eq(position as i32),
                    book_authors::role.eq(a.role.as_str()),
                ))
                .execute(conn)?;
        }
    }
    if let Some(category_ids) = category_ids {
        if mode == Links::Replace {
            diesel::delete(book_categories::table.filter(book_categories::book_id.eq(book_id)))
                .execute(conn)?;
        }
        for category_id in category_ids {
            diesel::insert_into(book_categories::table)
                .values((
                    book_categories::book_id.eq(book_id),
                    book_categories::category_id.eq(category_id),
                ))
                .execute(conn)?;
        }
    }
    Ok(())
}

fn ensure_isbn_free(conn: &mut DbConn, isbn: &Isbn, except: Option<i64>) -> Result<(), ApiError> {
    let holder = books::table
        .filter(books::isbn.eq(isbn.as_str()))
        .select(books::id)
        .first::<i64>(conn)
        .optional()?;
    match holder {
        Some(id) if Some(id) != except => Err(ApiError::Conflict(format!(
            "a book with ISBN {isbn} already exists (id {id})"
        ))),
        _ => Ok(()),
    }
}

/// A book's own columns, written the same way by insert and update.
#[derive(Insertable, AsChangeset)]
#[diesel(table_name = books, treat_none_as_null = true)]
struct BookColumns<'a> {
    isbn: &'a str,
    title: &'a str,
    subtitle: Option<&'a str>,
    description: Option<&'a str>,
    language: &'a str,
    publisher: Option<&'a str>,
    publication_date: Option<chrono::NaiveDate>,
    page_count: Option<i32>,
    format: &'a str,
    list_price_cents: i64,
    cover_url: Option<&'a str>,
    status: &'a str,
}

impl<'a> From<&'a BookFields> for BookColumns<'a> {
    fn from(f: &'a BookFields) -> Self {
        BookColumns {
            isbn: f.isbn.as_str(),
            title: &f.title,
            subtitle: f.subtitle.as_deref(),
            description: f.description.as_deref(),
            language: &f.language,
            publisher: f.publisher.as_deref(),
            publication_date: f.publication_date,
            page_count: f.page_count,
            format: f.format.as_str(),
            list_price_cents: f.list_price_cents,
            cover_url: f.cover_url.as_deref(),
            status: f.status.as_str(),
        }
    }
}

/// Inserts a book's own fields and its (empty) stock level with `reorder_point`; returns its id.
pub fn insert_book(conn: &mut DbConn, f: &BookFields, reorder_point: i64) -> Result<i64, ApiError> {
    let at = now();
    let id = diesel::insert_into(books::table)
        .values((
            BookColumns::from(f),
            books::version.eq(1),
            books::created_at.eq(at),
            books::updated_at.eq(at),
        ))
        .returning(books::id)
        .get_result(conn)?;
    crate::inventory::stock::create_level(conn, id, reorder_point, at)?;
    Ok(id)
}

/// Overwrites a book's own fields if it is still at `expected_version`; bumps the version.
/// Returns whether the row was updated.
pub fn overwrite_book(
    conn: &mut DbConn,
    id: i64,
    expected_version: i32,
    f: &BookFields,
) -> Result<bool, ApiError> {
    let updated = diesel::update(
        books::table
            .filter(books::id.eq(id))
            .filter(books::version.eq(expected_version)),
    )
    .set((
        BookColumns::from(f),
        books::version.eq(expected_version + 1),
        books::updated_at.eq(now()),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Creates a book; its stock level starts empty with `reorder_point`.
pub fn create_book(
    conn: &mut DbConn,
    input: &NewBook,
    currency: &str,
    reorder_point: i64,
) -> Result<BookView, ApiError> {
    let fields = input.fields().validate().map_err(ApiError::Validation)?;
    let id = write_transaction(conn, |tx| {
        check_links_exist(tx, &input.authors, &input.category_ids)?;
        ensure_isbn_free(tx, &fields.isbn, None)?;
        let id = insert_book(tx, &fields, reorder_point)?;
        write_links(
            tx,
            id,
            Links::New,
            Some(&input.authors),
            Some(&input.category_ids),
        )?;
        search::reindex(tx, Reindex::Book(id))?;
        Ok::<_, ApiError>(id)
    })?;
    get_book(conn, id, currency)
}

/// Applies a patch if the book is still at `expected_version` (412 otherwise); `None` accepts
/// whatever version is current (`If-Match: *`).
pub fn update_book(
    conn: &mut DbConn,
    id: i64,
    expected_version: Option<i32>,
    patch: &BookPatch,
    currency: &str,
) -> Result<BookView, ApiError> {
    write_transaction(conn, |tx| {
        let row: BookRow = books::table
            .find(id)
            .select(BookRow::as_select())
            .first(tx.conn())
            .optional()?
            .ok_or_else(|| not_found(id))?;
        let expected_version = expected_version.unwrap_or(row.version);
        if row.version != expected_version {
            return Err(stale(row.version));
        }
        let fields = patch
            .apply(row.raw_fields())
            .validate()
            .map_err(ApiError::Validation)?;
        check_links_exist(
            tx,
            patch.authors.as_deref().unwrap_or_default(),
            patch.category_ids.as_deref().unwrap_or_default(),
        )?;
        ensure_isbn_free(tx, &fields.isbn, Some(id))?;
        if !overwrite_book(tx, id, expected_version, &fields)? {
            return Err(stale(expected_version));
        }
        write_links(
            tx,
            id,
            Links::Replace,
            patch.authors.as_deref(),
            patch.category_ids.as_deref(),
        )?;
        search::reindex(tx, Reindex::Book(id))?;
        Ok(())
    })?;
    get_book(conn, id, currency)
}

fn stale(current: i32) -> ApiError {
    ApiError::PreconditionFailed(format!(
        "the book has changed since you read it (current version {current}); fetch it again"
    ))
}

/// What `DELETE /books/{id}` did.
pub enum Removal {
    Deleted,
    Archived(Box<BookView>),
}

/// Whether any record refers to the book (stock movements, order lines, purchase order lines,
/// stocktake lines), in which case it must be kept and is archived instead of deleted.
fn has_history(conn: &mut DbConn, book_id: i64) -> Result<bool, ApiError> {
    use diesel::dsl::{exists, select};
    let referenced = select(
        exists(stock_movements::table.filter(stock_movements::book_id.eq(book_id)))
            .or(exists(
                order_lines::table.filter(order_lines::book_id.eq(book_id)),
            ))
            .or(exists(
                purchase_order_lines::table.filter(purchase_order_lines::book_id.eq(book_id)),
            ))
            .or(exists(
                stocktake_lines::table.filter(stocktake_lines::book_id.eq(book_id)),
            )),
    )
    .get_result::<bool>(conn)?;
    Ok(referenced)
}

pub fn delete_book(conn: &mut DbConn, id: i64, currency: &str) -> Result<Removal, ApiError> {
    let archived = write_transaction(conn, |tx| {
        let version: i32 = books::table
            .find(id)
            .select(books::version)
            .first(tx.conn())
            .optional()?
            .ok_or_else(|| not_found(id))?;
        if has_history(tx, id)? {
            diesel::update(books::table.find(id))
                .set((
                    books::status.eq(BookStatus::Archived.as_str()),
                    books::version.eq(version + 1),
                    books::updated_at.eq(now()),
                ))
                .execute(tx.conn())?;
            search::reindex(tx, Reindex::Book(id))?;
            return Ok::<_, ApiError>(true);
        }
        search::unindex(tx, id)?;
        diesel::delete(books::table.find(id)).execute(tx.conn())?;
        Ok(false)
    })?;
    if archived {
        Ok(Removal::Archived(Box::new(get_book(conn, id, currency)?)))
    } else {
        Ok(Removal::Deleted)
    }
}
