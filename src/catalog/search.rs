//! Book search and listing, the one place where SQL differs by backend: FTS5 with bm25 ranking on
//! SQLite, a weighted `tsvector` with a GIN index and `ts_rank` on PostgreSQL. Everything else
//! (filters, sorting, paging) is the same SQL text on both.

use crate::catalog::isbn::Isbn;
use crate::catalog::model::BookFormat;
use crate::db::DbConn;
use crate::error::ApiError;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

/// Validated search and filter criteria.
#[derive(Debug, Clone, Default)]
pub struct BookFilter {
    pub text: Option<TextQuery>,
    pub author_id: Option<i64>,
    pub category_id: Option<i64>,
    pub language: Option<String>,
    pub format: Option<BookFormat>,
    pub min_price_cents: Option<i64>,
    pub max_price_cents: Option<i64>,
    /// `None` means any status.
    pub status: Option<&'static str>,
    /// Only books with stock available to sell.
    pub in_stock: bool,
}

/// What the `q` parameter asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextQuery {
    /// The input is a valid ISBN: match it exactly.
    Isbn(String),
    /// Words, all required; the last one matches as a prefix (the word being typed).
    Words(Vec<String>),
}

impl TextQuery {
    /// Splits input into words of letters and digits; `None` when nothing searchable remains.
    pub fn parse(input: &str) -> Option<TextQuery> {
        if let Ok(isbn) = Isbn::parse(input.trim()) {
            return Some(TextQuery::Isbn(isbn.as_str().to_owned()));
        }
        let words: Vec<String> = input
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .take(8)
            .map(|w| w.chars().take(64).collect::<String>().to_lowercase())
            .collect();
        (!words.is_empty()).then_some(TextQuery::Words(words))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Relevance,
    Title,
    Price,
    PublicationDate,
    Created,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

impl Sort {
    /// Parses `field` or `-field`; relevance needs a text query.
    pub fn parse(input: Option<&str>, has_text: bool) -> Result<Sort, ApiError> {
        let raw = input.map(str::trim).filter(|s| !s.is_empty());
        let Some(raw) = raw else {
            let key = if has_text {
                SortKey::Relevance
            } else {
                SortKey::Title
            };
            return Ok(Sort {
                key,
                descending: false,
            });
        };
        let (descending, name) = match raw.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        let key = match name {
            "relevance" if has_text => SortKey::Relevance,
            "relevance" => return Err(ApiError::invalid("sort", "relevance needs a search query q")),
            "title" => SortKey::Title,
            "price" => SortKey::Price,
            "publication_date" => SortKey::PublicationDate,
            "created" => SortKey::Created,
            _ => {
                return Err(ApiError::invalid(
                    "sort",
                    "must be one of relevance, title, price, publication_date, created (prefix - for descending)",
                ))
            }
        };
        Ok(Sort { key, descending })
    }
}

enum Bind {
    Int(i64),
    Text(String),
}

/// SQL text and its bind values, with `$n` placeholders (accepted by both backends).
#[derive(Default)]
struct Sql {
    text: String,
    binds: Vec<Bind>,
}

impl Sql {
    fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }
    fn bind(&mut self, value: Bind) {
        self.binds.push(value);
        self.text.push_str(&format!("${}", self.binds.len()));
    }
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn boxed<'a>(
    sql: &'a Sql,
) -> diesel::query_builder::BoxedSqlQuery<
    'a,
    crate::db::MultiBackend,
    diesel::query_builder::SqlQuery,
> {
    let mut query = diesel::sql_query(sql.text.clone()).into_boxed();
    for bind in &sql.binds {
        query = match bind {
            Bind::Int(v) => query.bind::<BigInt, _>(*v),
            Bind::Text(v) => query.bind::<Text, _>(v.as_str()),
        };
    }
    query
}

/// The FROM and WHERE of a search; `$1` is the text query when there is one.
fn from_where(conn: &DbConn, filter: &BookFilter) -> Sql {
    let mut sql = Sql::default();
    match (&filter.text, conn) {
        (Some(TextQuery::Words(words)), DbConn::Sqlite(_)) => {
            sql.push(
                "FROM books_fts JOIN books b ON b.id = books_fts.rowid WHERE books_fts MATCH ",
            );
            let fts = words
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let prefix = if i + 1 == words.len() { "*" } else { "" };
                    format!("\"{w}\"{prefix}")
                })
                .collect::<Vec<_>>()
                .join(" AND ");
            sql.bind(Bind::Text(fts));
        }
        (Some(TextQuery::Words(words)), DbConn::Pg(_)) => {
            sql.push("FROM books b WHERE b.search_vector @@ to_tsquery('simple', ");
            let tsquery = words
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let prefix = if i + 1 == words.len() { ":*" } else { "" };
                    format!("{w}{prefix}")
                })
                .collect::<Vec<_>>()
                .join(" & ");
            sql.bind(Bind::Text(tsquery));
            sql.push(")");
        }
        (Some(TextQuery::Isbn(isbn)), _) => {
            sql.push("FROM books b WHERE b.isbn = ");
            sql.bind(Bind::Text(isbn.clone()));
        }
        (None, _) => sql.push("FROM books b WHERE 1 = 1"),
    }
    if let Some(status) = filter.status {
        sql.push(" AND b.status = ");
        sql.bind(Bind::Text(status.to_owned()));
    }
    if let Some(author_id) = filter.author_id {
        sql.push(" AND b.id IN (SELECT book_id FROM book_authors WHERE author_id = ");
        sql.bind(Bind::Int(author_id));
        sql.push(")");
    }
    if let Some(category_id) = filter.category_id {
        sql.push(
            " AND b.id IN (SELECT bc.book_id FROM book_categories bc WHERE bc.category_id IN \
             (WITH RECURSIVE tree(id) AS (SELECT CAST(",
        );
        sql.bind(Bind::Int(category_id));
        sql.push(
            " AS BIGINT) UNION SELECT c.id FROM categories c JOIN tree ON c.parent_id = tree.id) \
             SELECT id FROM tree))",
        );
    }
    if let Some(language) = &filter.language {
        sql.push(" AND b.language = ");
        sql.bind(Bind::Text(language.clone()));
    }
    if let Some(format) = filter.format {
        sql.push(" AND b.format = ");
        sql.bind(Bind::Text(format.as_str().to_owned()));
    }
    if let Some(min) = filter.min_price_cents {
        sql.push(" AND b.list_price_cents >= ");
        sql.bind(Bind::Int(min));
    }
    if let Some(max) = filter.max_price_cents {
        sql.push(" AND b.list_price_cents <= ");
        sql.bind(Bind::Int(max));
    }
    if filter.in_stock {
        sql.push(" AND b.id IN (SELECT book_id FROM stock_levels WHERE on_hand - reserved > 0)");
    }
    sql
}

fn order_by(conn: &DbConn, sort: Sort, filter: &BookFilter) -> String {
    let dir = if sort.descending { "DESC" } else { "ASC" };
    let ranked = matches!(filter.text, Some(TextQuery::Words(_)));
    match (sort.key, conn) {
        // An exact ISBN matches at most one book: nothing to rank.
        (SortKey::Relevance, _) if !ranked => "ORDER BY b.id".to_owned(),
        // The table's rank function is a weighted bm25 (see the migration). No tie-breaker:
        // FTS5 answers `ORDER BY rank LIMIT n` with a top-n pass only when rank is the sole key.
        (SortKey::Relevance, DbConn::Sqlite(_)) => "ORDER BY books_fts.rank".to_owned(),
        (SortKey::Relevance, DbConn::Pg(_)) => {
            "ORDER BY ts_rank(b.search_vector, to_tsquery('simple', $1)) DESC, b.id".to_owned()
        }
        (SortKey::Title, _) => format!("ORDER BY lower(b.title) {dir}, b.id {dir}"),
        (SortKey::Price, _) => format!("ORDER BY b.list_price_cents {dir}, b.id {dir}"),
        // Books without a date come last in either direction, on both backends.
        (SortKey::PublicationDate, _) => format!(
            "ORDER BY CASE WHEN b.publication_date IS NULL THEN 1 ELSE 0 END, \
             b.publication_date {dir}, b.id {dir}"
        ),
        (SortKey::Created, _) => format!("ORDER BY b.created_at {dir}, b.id {dir}"),
    }
}

/// One page of matching book ids, in order, and the number of matches overall.
pub fn search(
    conn: &mut DbConn,
    filter: &BookFilter,
    sort: Sort,
    limit: i64,
    offset: i64,
) -> Result<(Vec<i64>, i64), ApiError> {
    let mut page = from_where(conn, filter);
    let count_sql = Sql {
        text: format!("SELECT COUNT(*) AS n {}", page.text),
        binds: page
            .binds
            .iter()
            .map(|b| match b {
                Bind::Int(v) => Bind::Int(*v),
                Bind::Text(v) => Bind::Text(v.clone()),
            })
            .collect(),
    };
    let order = order_by(conn, sort, filter);
    page.text = format!("SELECT b.id AS id {} {order} LIMIT ", page.text);
    page.bind(Bind::Int(limit));
    page.push(" OFFSET ");
    page.bind(Bind::Int(offset));

    let ids: Vec<i64> = boxed(&page)
        .load::<IdRow>(conn)?
        .into_iter()
        .map(|r| r.id)
        .collect();
    // A short first page already tells the total.
    let total = if offset == 0 && (ids.len() as i64) < limit {
        ids.len() as i64
    } else {
        boxed(&count_sql).get_result::<CountRow>(conn)?.n
    };
    Ok((ids, total))
}

/// Which books to re-index.
pub enum Reindex {
    Book(i64),
    BooksOfAuthor(i64),
}

/// Rebuilds the search entry of the given books from their current title, subtitle, authors
/// and ISBN. Call it in the same transaction as the change.
pub fn reindex(conn: &mut DbConn, which: Reindex) -> Result<(), ApiError> {
    let (subquery, id) = match which {
        Reindex::Book(id) => ("SELECT CAST($1 AS BIGINT)", id),
        Reindex::BooksOfAuthor(id) => ("SELECT book_id FROM book_authors WHERE author_id = $1", id),
    };
    match conn {
        DbConn::Sqlite(_) => {
            diesel::sql_query(format!("DELETE FROM books_fts WHERE rowid IN ({subquery})"))
                .bind::<BigInt, _>(id)
                .execute(conn)?;
            diesel::sql_query(format!(
                "INSERT INTO books_fts (rowid, title, subtitle, authors, isbn) \
                 SELECT b.id, b.title, COALESCE(b.subtitle, ''), \
                 COALESCE((SELECT group_concat(a.name, ' ') FROM book_authors ba \
                           JOIN authors a ON a.id = ba.author_id WHERE ba.book_id = b.id), ''), \
                 b.isbn FROM books b WHERE b.id IN ({subquery})"
            ))
            .bind::<BigInt, _>(id)
            .execute(conn)?;
        }
        DbConn::Pg(_) => {
            diesel::sql_query(format!(
                "UPDATE books SET search_vector = \
                 setweight(to_tsvector('simple', title), 'A') || \
                 setweight(to_tsvector('simple', COALESCE((SELECT string_agg(a.name, ' ') \
                     FROM book_authors ba JOIN authors a ON a.id = ba.author_id \
                     WHERE ba.book_id = books.id), '')), 'B') || \
                 setweight(to_tsvector('simple', COALESCE(subtitle, '')), 'C') || \
                 setweight(to_tsvector('simple', isbn), 'A') \
                 WHERE id IN ({subquery})"
            ))
            .bind::<BigInt, _>(id)
            .execute(conn)?;
        }
    }
    Ok(())
}

/// Removes a deleted book's search entry (PostgreSQL's lives in the row itself).
pub fn unindex(conn: &mut DbConn, book_id: i64) -> Result<(), ApiError> {
    if let DbConn::Sqlite(_) = conn {
        diesel::sql_query("DELETE FROM books_fts WHERE rowid = $1")
            .bind::<BigInt, _>(book_id)
            .execute(conn)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_queries() {
        assert_eq!(
            TextQuery::parse("Left-Hand  of DARK"),
            Some(TextQuery::Words(vec![
                "left".into(),
                "hand".into(),
                "of".into(),
                "dark".into()
            ]))
        );
        assert_eq!(
            TextQuery::parse("0-306-40615-2"),
            Some(TextQuery::Isbn("9780306406157".into()))
        );
        assert_eq!(TextQuery::parse(" \"*' "), None);
        assert_eq!(
            TextQuery::parse("Émile \"Zola\" OR x"),
            Some(TextQuery::Words(vec![
                "émile".into(),
                "zola".into(),
                "or".into(),
                "x".into()
            ]))
        );
    }

    #[test]
    fn sorts() {
        assert_eq!(Sort::parse(None, true).unwrap().key, SortKey::Relevance);
        assert_eq!(Sort::parse(None, false).unwrap().key, SortKey::Title);
        let s = Sort::parse(Some("-price"), false).unwrap();
        assert!(s.descending && s.key == SortKey::Price);
        assert!(Sort::parse(Some("relevance"), false).is_err());
        assert!(Sort::parse(Some("isbn"), false).is_err());
    }
}
