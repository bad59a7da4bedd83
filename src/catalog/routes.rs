//! HTTP routes of `/books`, `/authors` and `/categories`. Reads are public; writes need staff.

use crate::app::AppState;
use crate::auth::StaffUser;
use crate::catalog::isbn::Isbn;
use crate::catalog::model::*;
use crate::catalog::{authors, books, categories, import};
use crate::db;
use crate::error::{ApiError, Problem};
use crate::http::extract::{etag, if_match_version};
use crate::http::{ApiJson, ApiQuery, Page};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use utoipa::OpenApi;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/books")
            .wrap(from_fn(invalidate_search_on_write))
            .service(
                web::resource("")
                    .route(web::get().to(list_books))
                    .route(web::post().to(create_book)),
            )
            .service(web::resource("/import").route(web::post().to(import_books)))
            .service(web::resource("/isbn/{isbn}").route(web::get().to(get_book_by_isbn)))
            .service(
                web::resource("/{id}")
                    .route(web::get().to(get_book))
                    .route(web::patch().to(update_book))
                    .route(web::delete().to(delete_book)),
            ),
    )
    .service(
        web::scope("/authors")
            .wrap(from_fn(invalidate_search_on_write))
            .service(
                web::resource("")
                    .route(web::get().to(list_authors))
                    .route(web::post().to(create_author)),
            )
            .service(
                web::resource("/{id}")
                    .route(web::get().to(get_author))
                    .route(web::patch().to(update_author))
                    .route(web::delete().to(delete_author)),
            ),
    )
    .service(
        web::scope("/categories")
            .wrap(from_fn(invalidate_search_on_write))
            .service(
                web::resource("")
                    .route(web::get().to(list_categories))
                    .route(web::post().to(create_category)),
            )
            .service(
                web::resource("/{id}")
                    .route(web::get().to(get_category))
                    .route(web::patch().to(update_category))
                    .route(web::delete().to(delete_category)),
            ),
    );
}

/// Every successful write to the catalog (books, authors, categories) can change what a search
/// finds: the cached search results are dropped once it has committed, before the client hears
/// of it.
async fn invalidate_search_on_write(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let writes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    if writes && res.status().is_success() {
        if let Some(state) = state {
            state.search_cache.invalidate();
        }
    }
    Ok(res)
}

fn book_response(status: actix_web::http::StatusCode, book: &BookView) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::ETAG, etag(book.version)))
        .json(book)
}

/// Search and list books.
#[utoipa::path(get, path = "/api/v1/books", tag = "books", params(BookQuery),
    responses(
        (status = 200, description = "A page of books", body = Page<BookView>),
        (status = 422, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json")))]
pub async fn list_books(
    state: web::Data<AppState>,
    query: ApiQuery<BookQuery>,
) -> Result<HttpResponse, ApiError> {
    let currency = state.settings.currency.clone();
    let shared = state.clone();
    let page = db::run(&state.pool, move |conn| {
        books::list_books(conn, &query.0, &currency, &shared.search_cache)
    })
    .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Get a book; the `ETag` carries its version for `If-Match`.
#[utoipa::path(get, path = "/api/v1/books/{id}", tag = "books", params(("id" = i64, Path, description = "Book id")),
    responses(
        (status = 200, description = "The book", body = BookView,
         headers(("ETag" = String, description = "The book's version, quoted"))),
        (status = 404, description = "No such book", body = Problem, content_type = "application/problem+json")))]
pub async fn get_book(
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let currency = state.settings.currency.clone();
    let book = db::run(&state.pool, move |conn| {
        books::get_book(conn, id, &currency)
    })
    .await?;
    Ok(book_response(actix_web::http::StatusCode::OK, &book))
}

/// Get a book by ISBN-10 or ISBN-13, with or without hyphens.
#[utoipa::path(get, path = "/api/v1/books/isbn/{isbn}", tag = "books",
    params(("isbn" = String, Path, description = "ISBN-10 or ISBN-13", example = "978-0-441-47812-5")),
    responses(
        (status = 200, description = "The book", body = BookView),
        (status = 404, description = "No book has this ISBN", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a valid ISBN", body = Problem, content_type = "application/problem+json")))]
pub async fn get_book_by_isbn(
    state: web::Data<AppState>,
    isbn: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let isbn = Isbn::parse(&isbn).map_err(|e| ApiError::invalid("isbn", e.to_string()))?;
    let currency = state.settings.currency.clone();
    let book = db::run(&state.pool, move |conn| {
        books::get_by_isbn(conn, &isbn, &currency)
    })
    .await?;
    Ok(book_response(actix_web::http::StatusCode::OK, &book))
}

/// Add a book (staff).
#[utoipa::path(post, path = "/api/v1/books", tag = "books", request_body = NewBook, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = BookView,
         headers(("Location" = String), ("ETag" = String))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The ISBN is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json")))]
pub async fn create_book(
    state: web::Data<AppState>,
    _staff: StaffUser,
    body: ApiJson<NewBook>,
) -> Result<HttpResponse, ApiError> {
    let currency = state.settings.currency.clone();
    let reorder_point = state.settings.default_reorder_point;
    let book = db::run(&state.pool, move |conn| {
        books::create_book(conn, &body.0, &currency, reorder_point)
    })
    .await?;
    let mut res = book_response(actix_web::http::StatusCode::CREATED, &book);
    if let Ok(location) = header::HeaderValue::from_str(&format!("/api/v1/books/{}", book.id)) {
        res.headers_mut().insert(header::LOCATION, location);
    }
    Ok(res)
}

/// Change a book (staff). Send `If-Match` with the ETag you read: a stale version is refused with
/// 412, a missing header with 428.
#[utoipa::path(patch, path = "/api/v1/books/{id}", tag = "books", request_body = BookPatch,
    params(("id" = i64, Path, description = "Book id"),
           ("If-Match" = String, Header, description = "ETag of the version being changed", example = "\"1\"")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", body = BookView, headers(("ETag" = String))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such book", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The new ISBN is taken", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The book changed since it was read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 428, description = "If-Match is missing", body = Problem, content_type = "application/problem+json")))]
pub async fn update_book(
    state: web::Data<AppState>,
    _staff: StaffUser,
    req: HttpRequest,
    id: web::Path<i64>,
    body: ApiJson<BookPatch>,
) -> Result<HttpResponse, ApiError> {
    let version = if_match_version(&req)?;
    let id = id.into_inner();
    let currency = state.settings.currency.clone();
    let book = db::run(&state.pool, move |conn| {
        books::update_book(conn, id, version, &body.0, &currency)
    })
    .await?;
    Ok(book_response(actix_web::http::StatusCode::OK, &book))
}

/// Remove a book (staff): deleted when nothing refers to it, otherwise archived and returned.
#[utoipa::path(delete, path = "/api/v1/books/{id}", tag = "books", params(("id" = i64, Path, description = "Book id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 200, description = "The book has history and was archived instead", body = BookView,
         headers(("ETag" = String, description = "The version, quoted"))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such book", body = Problem, content_type = "application/problem+json")))]
pub async fn delete_book(
    state: web::Data<AppState>,
    _staff: StaffUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let currency = state.settings.currency.clone();
    match db::run(&state.pool, move |conn| {
        books::delete_book(conn, id, &currency)
    })
    .await?
    {
        books::Removal::Deleted => Ok(HttpResponse::NoContent().finish()),
        books::Removal::Archived(book) => Ok(book_response(actix_web::http::StatusCode::OK, &book)),
    }
}

/// Import books from CSV (staff): upsert by ISBN in one transaction.
///
/// Columns (header row required, any order): `isbn`, `title`, `language`, `format`,
/// `list_price_cents` are required; `subtitle`, `description`, `publisher`, `publication_date`
/// (YYYY-MM-DD), `page_count`, `cover_url`, `authors` (names separated by `|`, each optionally
/// suffixed `:editor`, `:translator` or `:illustrator`) and `categories` (paths separated by `|`,
/// levels by `>`) are optional. Unknown authors and categories are created. Rows with errors are
/// skipped and reported with their line number; the rest are written.
#[utoipa::path(post, path = "/api/v1/books/import", tag = "books",
    request_body(content = String, content_type = "text/csv",
        example = "isbn,title,authors,categories,language,format,list_price_cents\n\
                   9780441478125,The Left Hand of Darkness,Ursula K. Le Guin,Fiction > Science fiction,en,paperback,1799\n"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What was created, updated and skipped", body = ImportReport),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The file is too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not text/csv", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The header row is unusable", body = Problem, content_type = "application/problem+json")))]
pub async fn import_books(
    state: web::Data<AppState>,
    _staff: StaffUser,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let is_csv = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("text/csv"));
    if !is_csv {
        return Err(ApiError::UnsupportedMediaType(
            "send the file with Content-Type: text/csv".into(),
        ));
    }
    let limit = state.settings.import_limit_bytes;
    let mut data = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("cannot read the body: {e}")))?;
        if data.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(format!(
                "the file exceeds the limit of {limit} bytes"
            )));
        }
        data.extend_from_slice(&chunk);
    }
    let reorder_point = state.settings.default_reorder_point;
    let report = db::run(&state.pool, move |conn| {
        import::import_csv(conn, &data, reorder_point)
    })
    .await?;
    Ok(HttpResponse::Ok().json(report))
}

/// List authors.
#[utoipa::path(get, path = "/api/v1/authors", tag = "authors", params(AuthorQuery),
    responses((status = 200, description = "A page of authors", body = Page<AuthorView>),
        (status = 422, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json")))]
pub async fn list_authors(
    state: web::Data<AppState>,
    query: ApiQuery<AuthorQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = db::run(&state.pool, move |conn| {
        authors::list_authors(conn, &query.0)
    })
    .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Get an author.
#[utoipa::path(get, path = "/api/v1/authors/{id}", tag = "authors", params(("id" = i64, Path, description = "Author id")),
    responses((status = 200, description = "The author", body = AuthorView),
        (status = 404, description = "No such author", body = Problem, content_type = "application/problem+json")))]
pub async fn get_author(
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let author = db::run(&state.pool, move |conn| authors::get_author(conn, id)).await?;
    Ok(HttpResponse::Ok().json(author))
}

/// Add an author (staff).
#[utoipa::path(post, path = "/api/v1/authors", tag = "authors", request_body = NewAuthor, security(("bearer" = [])),
    responses((status = 201, description = "Created", body = AuthorView, headers(("Location" = String))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json")))]
pub async fn create_author(
    state: web::Data<AppState>,
    _staff: StaffUser,
    body: ApiJson<NewAuthor>,
) -> Result<HttpResponse, ApiError> {
    let author = db::run(&state.pool, move |conn| {
        authors::create_author(conn, &body.0)
    })
    .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/authors/{}", author.id)))
        .json(author))
}

/// Change an author (staff); a rename re-indexes their books for search.
#[utoipa::path(patch, path = "/api/v1/authors/{id}", tag = "authors", request_body = AuthorPatch,
    params(("id" = i64, Path, description = "Author id")), security(("bearer" = [])),
    responses((status = 200, description = "Updated", body = AuthorView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such author", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json")))]
pub async fn update_author(
    state: web::Data<AppState>,
    _staff: StaffUser,
    id: web::Path<i64>,
    body: ApiJson<AuthorPatch>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let author = db::run(&state.pool, move |conn| {
        authors::update_author(conn, id, &body.0)
    })
    .await?;
    Ok(HttpResponse::Ok().json(author))
}

/// Delete an author (staff); refused while the author is credited on a book.
#[utoipa::path(delete, path = "/api/v1/authors/{id}", tag = "authors",
    params(("id" = i64, Path, description = "Author id")), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such author", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The author is credited on books", body = Problem, content_type = "application/problem+json")))]
pub async fn delete_author(
    state: web::Data<AppState>,
    _staff: StaffUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    db::run(&state.pool, move |conn| authors::delete_author(conn, id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// List categories, optionally the children of one (`parent_id=0` for the top level).
#[utoipa::path(get, path = "/api/v1/categories", tag = "categories", params(CategoryQuery),
    responses((status = 200, description = "A page of categories", body = Page<CategoryView>),
        (status = 422, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json")))]
pub async fn list_categories(
    state: web::Data<AppState>,
    query: ApiQuery<CategoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = db::run(&state.pool, move |conn| {
        categories::list_categories(conn, &query.0)
    })
    .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Get a category.
#[utoipa::path(get, path = "/api/v1/categories/{id}", tag = "categories",
    params(("id" = i64, Path, description = "Category id")),
    responses((status = 200, description = "The category", body = CategoryView),
        (status = 404, description = "No such category", body = Problem, content_type = "application/problem+json")))]
pub async fn get_category(
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let category = db::run(&state.pool, move |conn| categories::get_category(conn, id)).await?;
    Ok(HttpResponse::Ok().json(category))
}

/// Add a category (staff).
#[utoipa::path(post, path = "/api/v1/categories", tag = "categories", request_body = NewCategory,
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = CategoryView, headers(("Location" = String))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A sibling has this name", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields or unknown parent", body = Problem, content_type = "application/problem+json")))]
pub async fn create_category(
    state: web::Data<AppState>,
    _staff: StaffUser,
    body: ApiJson<NewCategory>,
) -> Result<HttpResponse, ApiError> {
    let category = db::run(&state.pool, move |conn| {
        categories::create_category(conn, &body.0)
    })
    .await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/categories/{}", category.id),
        ))
        .json(category))
}

/// Rename, describe or move a category (staff); a category cannot move under itself.
#[utoipa::path(patch, path = "/api/v1/categories/{id}", tag = "categories", request_body = CategoryPatch,
    params(("id" = i64, Path, description = "Category id")), security(("bearer" = [])),
    responses((status = 200, description = "Updated", body = CategoryView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such category", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A sibling has this name", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields or parent", body = Problem, content_type = "application/problem+json")))]
pub async fn update_category(
    state: web::Data<AppState>,
    _staff: StaffUser,
    id: web::Path<i64>,
    body: ApiJson<CategoryPatch>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let category = db::run(&state.pool, move |conn| {
        categories::update_category(conn, id, &body.0)
    })
    .await?;
    Ok(HttpResponse::Ok().json(category))
}

/// Delete a category (staff); refused while it has sub-categories or books.
#[utoipa::path(delete, path = "/api/v1/categories/{id}", tag = "categories",
    params(("id" = i64, Path, description = "Category id")), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such category", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It has sub-categories or books", body = Problem, content_type = "application/problem+json")))]
pub async fn delete_category(
    state: web::Data<AppState>,
    _staff: StaffUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    db::run(&state.pool, move |conn| {
        categories::delete_category(conn, id)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(OpenApi)]
#[openapi(
    paths(
        list_books, get_book, get_book_by_isbn, create_book, update_book, delete_book, import_books,
        list_authors, get_author, create_author, update_author, delete_author,
        list_categories, get_category, create_category, update_category, delete_category
    ),
    components(schemas(
        BookView, BookAuthorView, BookCategoryView, NewBook, BookPatch, BookAuthorInput, BookFormat,
        BookStatus, AuthorRole, AuthorView, NewAuthor, AuthorPatch, CategoryView, NewCategory,
        CategoryPatch, ImportReport, ImportFailure, Page<BookView>, Page<AuthorView>, Page<CategoryView>
    ))
)]
pub struct CatalogApi;
