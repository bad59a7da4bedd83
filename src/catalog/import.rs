//! CSV import: upserts books by ISBN in one transaction, creating the authors and categories it
//! names. Rows with errors are reported and skipped; the others are written.
//!
//! Columns (header row required, any order): `isbn`, `title`, `language`, `format`,
//! `list_price_cents` (required); `subtitle`, `description`, `publisher`, `publication_date`
//! (YYYY-MM-DD), `page_count`, `cover_url`, `authors` (names separated by `|`, each optionally
//! suffixed with `:editor`, `:translator` or `:illustrator`), `categories` (paths separated by `|`,
//! levels by `>`, e.g. `Fiction > Fantasy`). When a row updates a book, an optional column the
//! file does not have keeps the book's value; an empty cell clears it.

use crate::catalog::books::{insert_book, overwrite_book, write_links, Links};
use crate::catalog::model::*;
use crate::catalog::search::{self, Reindex};
use crate::db::schema::{authors, books, categories};
use crate::db::{now, write_transaction, DbConn};
use crate::error::{ApiError, FieldError};
use crate::http::text;
use diesel::prelude::*;
use std::collections::HashMap;

const REQUIRED: [&str; 5] = ["isbn", "title", "language", "format", "list_price_cents"];
const OPTIONAL: [&str; 8] = [
    "subtitle",
    "description",
    "publisher",
    "publication_date",
    "page_count",
    "cover_url",
    "authors",
    "categories",
];

/// A row that passed validation, ready to write.
struct ImportRow {
    line: u64,
    fields: BookFields,
    /// `None` when the file has no `authors` column: existing credits are kept.
    authors: Option<Vec<(String, AuthorRole)>>,
    categories: Option<Vec<Vec<String>>>,
}

fn failure(line: u64, field: &str, message: impl Into<String>) -> ImportFailure {
    ImportFailure {
        row: line,
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Reads the header, naming missing and unknown columns.
fn column_map(headers: &csv::StringRecord) -> Result<HashMap<String, usize>, ApiError> {
    let mut map = HashMap::new();
    let mut errors = Vec::new();
    for (i, name) in headers.iter().enumerate() {
        let name = name
            .trim()
            .trim_start_matches('\u{feff}')
            .to_ascii_lowercase();
        if !REQUIRED.contains(&name.as_str()) && !OPTIONAL.contains(&name.as_str()) {
            errors.push(FieldError::new(
                "header",
                format!("unknown column '{name}'"),
            ));
        } else if map.insert(name.clone(), i).is_some() {
            errors.push(FieldError::new(
                "header",
                format!("column '{name}' appears twice"),
            ));
        }
    }
    for required in REQUIRED {
        if !map.contains_key(required) {
            errors.push(FieldError::new(
                "header",
                format!("missing required column '{required}'"),
            ));
        }
    }
    into_validation(errors)?;
    Ok(map)
}

fn parse_row(
    line: u64,
    record: &csv::StringRecord,
    columns: &HashMap<String, usize>,
) -> Result<ImportRow, Vec<ImportFailure>> {
    let cell = |name: &str| -> Option<String> {
        columns
            .get(name)
            .and_then(|&i| record.get(i))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    // The one text rule of the API (`http::text`): a cell with NUL or a control character fails
    // its row, naming the column, before anything else is read from it.
    let mut by_position: Vec<(&String, usize)> = columns.iter().map(|(n, &i)| (n, i)).collect();
    by_position.sort_by_key(|&(_, i)| i);
    let control: Vec<ImportFailure> = by_position
        .into_iter()
        .filter_map(|(name, i)| {
            let cell = record.get(i)?.trim();
            text::check_field(name, cell)
                .err()
                .map(|e| failure(line, name, e.message))
        })
        .collect();
    if !control.is_empty() {
        return Err(control);
    }
    let mut failures = Vec::new();
    let mut number = |name: &str| -> Option<i64> {
        let raw = cell(name)?;
        match raw.parse::<i64>() {
            Ok(v) => Some(v),
            Err(_) => {
                failures.push(failure(
                    line,
                    name,
                    format!("'{raw}' is not a whole number"),
                ));
                None
            }
        }
    };
    let list_price_cents = number("list_price_cents").unwrap_or(0);
    let page_count = number("page_count").map(|p| i32::try_from(p).unwrap_or(-1));
    let publication_date = cell("publication_date").and_then(|raw| {
        match chrono::NaiveDate::parse_from_str(&raw, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                failures.push(failure(
                    line,
                    "publication_date",
                    format!("'{raw}' is not a YYYY-MM-DD date"),
                ));
                None
            }
        }
    });
    let format = cell("format").map(|f| f.to_ascii_lowercase());
    let parsed_format = format.as_deref().and_then(BookFormat::parse);
    if format.is_some() && parsed_format.is_none() {
        failures.push(failure(
            line,
            "format",
            format!("must be one of {}", BookFormat::ALL.join(", ")),
        ));
    }
    let raw = RawBookFields {
        isbn: cell("isbn").unwrap_or_default(),
        title: cell("title").unwrap_or_default(),
        subtitle: cell("subtitle"),
        description: cell("description"),
        language: cell("language").unwrap_or_default(),
        publisher: cell("publisher"),
        publication_date,
        page_count,
        format: parsed_format,
        list_price_cents,
        cover_url: cell("cover_url"),
        status: None,
    };
    let fields = match raw.validate() {
        Ok(f) => Some(f),
        Err(errors) => {
            for e in errors {
                // The format and number messages above are more precise than the generic ones.
                if !failures.iter().any(|f| f.field == e.field) {
                    failures.push(failure(line, &e.field, e.message));
                }
            }
            None
        }
    };
    let authors = columns.contains_key("authors").then(|| {
        split_list(cell("authors"))
            .map(|entry| match entry.rsplit_once(':') {
                Some((name, role)) if AuthorRole::parse(role.trim()).is_some() => (
                    name.trim().to_owned(),
                    AuthorRole::parse(role.trim()).unwrap_or_default(),
                ),
                _ => (entry, AuthorRole::Author),
            })
            .collect::<Vec<_>>()
    });
    let categories = columns.contains_key("categories").then(|| {
        split_list(cell("categories"))
            .map(|path| {
                path.split('>')
                    .map(|level| level.trim().to_owned())
                    .filter(|level| !level.is_empty())
                    .collect::<Vec<_>>()
            })
            .filter(|path| !path.is_empty())
            .collect::<Vec<_>>()
    });
    if authors
        .as_ref()
        .is_some_and(|a| a.iter().any(|(n, _)| n.chars().count() > 300))
    {
        failures.push(failure(
            line,
            "authors",
            "an author name is longer than 300 characters",
        ));
    }
    if authors.as_ref().is_some_and(|a| a.len() > MAX_CONTRIBUTORS) {
        failures.push(failure(
            line,
            "authors",
            format!("at most {MAX_CONTRIBUTORS} contributors"),
        ));
    }
    if categories
        .as_ref()
        .is_some_and(|c| c.len() > MAX_CATEGORIES)
    {
        failures.push(failure(
            line,
            "categories",
            format!("at most {MAX_CATEGORIES} categories"),
        ));
    }
    match fields {
        Some(fields) if failures.is_empty() => Ok(ImportRow {
            line,
            fields,
            authors,
            categories,
        }),
        _ => Err(failures),
    }
}

fn split_list(cell: Option<String>) -> impl Iterator<Item = String> {
    cell.into_iter()
        .flat_map(|c| {
            c.split('|')
                .map(|s| s.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
}

/// Finds or creates authors and categories by name, remembering what it has seen.
#[derive(Default)]
struct Resolver {
    authors: HashMap<String, i64>,
    categories: HashMap<(Option<i64>, String), i64>,
}

impl Resolver {
    fn author(&mut self, conn: &mut DbConn, name: &str) -> Result<i64, ApiError> {
        let key = name.to_lowercase();
        if let Some(id) = self.authors.get(&key) {
            return Ok(*id);
        }
        // `lower()` on both sides: SQLite's lowers ASCII only, so comparing it with Rust's
        // `to_lowercase` would never match a name such as "Émile Zola".
        let existing: Option<i64> = authors::table
            .filter(
                diesel::dsl::sql::<diesel::sql_types::Bool>("lower(authors.name) = lower(")
                    .bind::<diesel::sql_types::Text, _>(name.to_owned())
                    .sql(")"),
            )
            .order(authors::id)
            .select(authors::id)
            .first(conn)
            .optional()?;
        let id = match existing {
            Some(id) => id,
            None => {
                let at = now();
                diesel::insert_into(authors::table)
                    .values((
                        authors::name.eq(name),
                        authors::created_at.eq(at),
                        authors::updated_at.eq(at),
                    ))
                    .returning(authors::id)
                    .get_result(conn)?
            }
        };
        self.authors.insert(key, id);
        Ok(id)
    }

    fn category_path(&mut self, conn: &mut DbConn, path: &[String]) -> Result<i64, ApiError> {
        let mut parent: Option<i64> = None;
        for level in path {
            let key = (parent, level.to_lowercase());
            if let Some(id) = self.categories.get(&key) {
                parent = Some(*id);
                continue;
            }
            // The same comparison as the unique index on sibling names, `lower(name)`, so that a
            // miss here never collides with an existing row on insert.
            let mut q = categories::table
                .filter(
                    diesel::dsl::sql::<diesel::sql_types::Bool>("lower(categories.name) = lower(")
                        .bind::<diesel::sql_types::Text, _>(level.clone())
                        .sql(")"),
                )
                .select(categories::id)
                .into_boxed();
            q = match parent {
                Some(p) => q.filter(categories::parent_id.eq(p)),
                None => q.filter(categories::parent_id.is_null()),
            };
            let id = match q.first::<i64>(conn).optional()? {
                Some(id) => id,
                None => {
                    let at = now();
                    diesel::insert_into(categories::table)
                        .values((
                            categories::name.eq(level),
                            categories::parent_id.eq(parent),
                            categories::created_at.eq(at),
                            categories::updated_at.eq(at),
                        ))
                        .returning(categories::id)
                        .get_result(conn)?
                }
            };
            self.categories.insert(key, id);
            parent = Some(id);
        }
        parent.ok_or_else(|| ApiError::internal("empty category path"))
    }
}

enum Upserted {
    Created,
    Updated,
}

/// Writes one row. `absent` lists the optional columns the file does not have.
fn upsert(
    conn: &mut DbConn,
    resolver: &mut Resolver,
    row: &ImportRow,
    absent: &[&str],
    reorder_point: i64,
) -> Result<Upserted, ApiError> {
    let contributors = match &row.authors {
        Some(list) => {
            let mut inputs: Vec<BookAuthorInput> = Vec::with_capacity(list.len());
            for (name, role) in list {
                let author_id = resolver.author(conn, name)?;
                if !inputs
                    .iter()
                    .any(|i| i.author_id == author_id && i.role == *role)
                {
                    inputs.push(BookAuthorInput {
                        author_id,
                        role: *role,
                    });
                }
            }
            Some(inputs)
        }
        None => None,
    };
    let category_ids = match &row.categories {
        Some(paths) => {
            let mut ids = Vec::with_capacity(paths.len());
            for path in paths {
                let id = resolver.category_path(conn, path)?;
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            Some(ids)
        }
        None => None,
    };
    let existing: Option<BookRow> = books::table
        .filter(books::isbn.eq(row.fields.isbn.as_str()))
        .select(BookRow::as_select())
        .first(conn)
        .optional()?;
    let (id, outcome, links) = match existing {
        Some(current) => {
            let mut fields = row.fields.clone();
            // The file has no status column: an import never un-archives a book.
            fields.status = if current.status == "archived" {
                BookStatus::Archived
            } else {
                BookStatus::Active
            };
            // Like a missing `authors` or `categories` column, a missing optional column keeps
            // what the book has (an empty cell in a present column clears it).
            for column in absent {
                match *column {
                    "subtitle" => fields.subtitle = current.subtitle.clone(),
                    "description" => fields.description = current.description.clone(),
                    "publisher" => fields.publisher = current.publisher.clone(),
                    "publication_date" => fields.publication_date = current.publication_date,
                    "page_count" => fields.page_count = current.page_count,
                    "cover_url" => fields.cover_url = current.cover_url.clone(),
                    _ => {}
                }
            }
            overwrite_book(conn, current.id, current.version, &fields)?;
            (current.id, Upserted::Updated, Links::Replace)
        }
        None => (
            insert_book(conn, &row.fields, reorder_point)?,
            Upserted::Created,
            Links::New,
        ),
    };
    write_links(
        conn,
        id,
        links,
        contributors.as_deref(),
        category_ids.as_deref(),
    )?;
    search::reindex(conn, Reindex::Book(id))?;
    Ok(outcome)
}

/// Parses and imports a CSV document; new books' stock levels get `reorder_point`.
pub fn import_csv(
    conn: &mut DbConn,
    data: &[u8],
    reorder_point: i64,
) -> Result<ImportReport, ApiError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(data);
    let headers = reader
        .headers()
        .map_err(|e| ApiError::invalid("header", format!("cannot read the header row: {e}")))?
        .clone();
    let columns = column_map(&headers)?;
    let absent: Vec<&str> = OPTIONAL
        .into_iter()
        .filter(|c| !columns.contains_key(*c))
        .collect();

    let mut failed = Vec::new();
    let mut rows = Vec::new();
    let mut first_line_of: HashMap<String, u64> = HashMap::new();
    for (index, record) in reader.records().enumerate() {
        let line = record
            .as_ref()
            .ok()
            .and_then(|r| r.position())
            .map_or(index as u64 + 2, |p| p.line());
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                failed.push(failure(line, "row", format!("cannot be read as CSV: {e}")));
                continue;
            }
        };
        match parse_row(line, &record, &columns) {
            Ok(row) => match first_line_of.get(row.fields.isbn.as_str()) {
                Some(first) => failed.push(failure(
                    line,
                    "isbn",
                    format!("repeats the ISBN of line {first}"),
                )),
                None => {
                    first_line_of.insert(row.fields.isbn.as_str().to_owned(), line);
                    rows.push(row);
                }
            },
            Err(mut f) => failed.append(&mut f),
        }
    }

    let (created, updated) = write_transaction(conn, |tx| {
        let mut resolver = Resolver::default();
        let (mut created, mut updated) = (0u64, 0u64);
        for row in &rows {
            // A savepoint per row: a row the database refuses is reported, the rest still land.
            match tx.transaction(|tx| upsert(tx, &mut resolver, row, &absent, reorder_point)) {
                Ok(Upserted::Created) => created += 1,
                Ok(Upserted::Updated) => updated += 1,
                Err(ApiError::Internal(cause)) => return Err(ApiError::Internal(cause)),
                Err(ApiError::Unavailable(cause)) => return Err(ApiError::Unavailable(cause)),
                Err(other) => {
                    // Names created in the rolled-back savepoint are gone: forget them.
                    resolver = Resolver::default();
                    let problem = other.to_problem();
                    let field = problem
                        .errors
                        .first()
                        .map_or("row".to_owned(), |e| e.field.clone());
                    failed.push(failure(row.line, &field, problem.detail));
                }
            }
        }
        Ok::<_, ApiError>((created, updated))
    })?;
    failed.sort_by_key(|f| f.row);
    Ok(ImportReport {
        created,
        updated,
        failed,
    })
}
