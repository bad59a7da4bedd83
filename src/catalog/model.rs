//! Catalog rows, request bodies and response views, and the one place where a book's fields are
//! validated (shared by create, update and CSV import).

use crate::catalog::isbn::Isbn;
use crate::db::schema::{authors, books, categories};
use crate::error::{ApiError, FieldError};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

pub fn utc(at: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(at, Utc)
}

/// Physical or digital form of a book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BookFormat {
    Hardcover,
    Paperback,
    Ebook,
    Audiobook,
}

impl BookFormat {
    pub const ALL: [&'static str; 4] = ["hardcover", "paperback", "ebook", "audiobook"];

    pub fn as_str(self) -> &'static str {
        match self {
            BookFormat::Hardcover => "hardcover",
            BookFormat::Paperback => "paperback",
            BookFormat::Ebook => "ebook",
            BookFormat::Audiobook => "audiobook",
        }
    }

    pub fn parse(s: &str) -> Option<BookFormat> {
        match s {
            "hardcover" => Some(BookFormat::Hardcover),
            "paperback" => Some(BookFormat::Paperback),
            "ebook" => Some(BookFormat::Ebook),
            "audiobook" => Some(BookFormat::Audiobook),
            _ => None,
        }
    }
}

/// Archived books stay readable (orders refer to them) but are hidden from the default listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BookStatus {
    Active,
    Archived,
}

impl BookStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BookStatus::Active => "active",
            BookStatus::Archived => "archived",
        }
    }
}

/// What a contributor did for a book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuthorRole {
    #[default]
    Author,
    Editor,
    Translator,
    Illustrator,
}

impl AuthorRole {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorRole::Author => "author",
            AuthorRole::Editor => "editor",
            AuthorRole::Translator => "translator",
            AuthorRole::Illustrator => "illustrator",
        }
    }

    pub fn parse(s: &str) -> Option<AuthorRole> {
        match s {
            "author" => Some(AuthorRole::Author),
            "editor" => Some(AuthorRole::Editor),
            "translator" => Some(AuthorRole::Translator),
            "illustrator" => Some(AuthorRole::Illustrator),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = books)]
pub struct BookRow {
    pub id: i64,
    pub isbn: String,
    pub title: String,
    pub subtitle: Option<String>,
    pub description: Option<String>,
    pub language: String,
    pub publisher: Option<String>,
    pub publication_date: Option<NaiveDate>,
    pub page_count: Option<i32>,
    pub format: String,
    pub list_price_cents: i64,
    pub cover_url: Option<String>,
    pub status: String,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A contributor as shown on a book.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BookAuthorView {
    pub id: i64,
    #[schema(example = "Ursula K. Le Guin")]
    pub name: String,
    pub role: AuthorRole,
}

/// A category as shown on a book.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BookCategoryView {
    pub id: i64,
    #[schema(example = "Science fiction")]
    pub name: String,
}

/// A book as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 1, "isbn": "9780441478125", "isbn10": "0441478123",
    "title": "The Left Hand of Darkness", "subtitle": null,
    "description": "A lone envoy visits a planet whose people have no fixed sex.",
    "language": "en", "publisher": "Ace", "publication_date": "1969-03-01", "page_count": 304,
    "format": "paperback", "list_price_cents": 1799, "currency": "USD", "available": 12,
    "cover_url": "https://covers.example/9780441478125.jpg", "status": "active", "version": 1,
    "authors": [{"id": 1, "name": "Ursula K. Le Guin", "role": "author"}],
    "categories": [{"id": 2, "name": "Science fiction"}],
    "created_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:00:00Z"
}))]
pub struct BookView {
    pub id: i64,
    /// Normalised ISBN-13.
    pub isbn: String,
    /// ISBN-10 form, for 978-prefixed ISBNs.
    pub isbn10: Option<String>,
    pub title: String,
    pub subtitle: Option<String>,
    pub description: Option<String>,
    /// ISO 639-1 code.
    pub language: String,
    pub publisher: Option<String>,
    pub publication_date: Option<NaiveDate>,
    pub page_count: Option<i32>,
    pub format: BookFormat,
    pub list_price_cents: i64,
    /// ISO 4217 currency of every amount.
    pub currency: String,
    /// Copies that can be sold now (on hand minus those reserved for orders).
    pub available: i64,
    pub cover_url: Option<String>,
    pub status: BookStatus,
    /// Changes on every update; send it back in `If-Match`.
    pub version: i32,
    /// In credit order.
    pub authors: Vec<BookAuthorView>,
    pub categories: Vec<BookCategoryView>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A contributor of a new or updated book.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct BookAuthorInput {
    pub author_id: i64,
    #[serde(default)]
    pub role: AuthorRole,
}

/// Body of `POST /books`.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[schema(example = json!({
    "isbn": "0-441-47812-3", "title": "The Left Hand of Darkness", "language": "en",
    "publisher": "Ace", "publication_date": "1969-03-01", "page_count": 304,
    "format": "paperback", "list_price_cents": 1799,
    "authors": [{"author_id": 1, "role": "author"}], "category_ids": [2]
}))]
#[serde(deny_unknown_fields)]
pub struct NewBook {
    /// ISBN-10 or ISBN-13, hyphens allowed.
    pub isbn: String,
    pub title: String,
    pub subtitle: Option<String>,
    pub description: Option<String>,
    /// ISO 639-1 code, such as `en`.
    pub language: String,
    pub publisher: Option<String>,
    pub publication_date: Option<NaiveDate>,
    pub page_count: Option<i32>,
    pub format: BookFormat,
    /// Price in minor units of the store currency; greater than 0.
    pub list_price_cents: i64,
    pub cover_url: Option<String>,
    #[serde(default)]
    pub authors: Vec<BookAuthorInput>,
    #[serde(default)]
    pub category_ids: Vec<i64>,
}

/// Distinguishes an absent field (keep) from an explicit `null` (clear).
fn double_option<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

/// Body of `PATCH /books/{id}`: absent fields are kept, `null` clears an optional field.
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[schema(example = json!({"list_price_cents": 1599, "subtitle": null}))]
#[serde(deny_unknown_fields)]
pub struct BookPatch {
    pub isbn: Option<String>,
    pub title: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub subtitle: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    pub language: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub publisher: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<NaiveDate>)]
    pub publication_date: Option<Option<NaiveDate>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i32>)]
    pub page_count: Option<Option<i32>>,
    pub format: Option<BookFormat>,
    pub list_price_cents: Option<i64>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub cover_url: Option<Option<String>>,
    pub status: Option<BookStatus>,
    /// Replaces the contributors when present.
    pub authors: Option<Vec<BookAuthorInput>>,
    /// Replaces the categories when present.
    pub category_ids: Option<Vec<i64>>,
}

/// A book's own fields after validation: what gets written.
#[derive(Debug, Clone)]
pub struct BookFields {
    pub isbn: Isbn,
    pub title: String,
    pub subtitle: Option<String>,
    pub description: Option<String>,
    pub language: String,
    pub publisher: Option<String>,
    pub publication_date: Option<NaiveDate>,
    pub page_count: Option<i32>,
    pub format: BookFormat,
    pub list_price_cents: i64,
    pub cover_url: Option<String>,
    pub status: BookStatus,
}

/// Raw field values before validation, from JSON or a CSV row.
#[derive(Debug, Clone, Default)]
pub struct RawBookFields {
    pub isbn: String,
    pub title: String,
    pub subtitle: Option<String>,
    pub description: Option<String>,
    pub language: String,
    pub publisher: Option<String>,
    pub publication_date: Option<NaiveDate>,
    pub page_count: Option<i32>,
    pub format: Option<BookFormat>,
    pub list_price_cents: i64,
    pub cover_url: Option<String>,
    pub status: Option<BookStatus>,
}

pub const MAX_TITLE: usize = 500;
pub const MAX_TEXT: usize = 20_000;
pub const MAX_SHORT: usize = 300;
pub const MAX_PRICE_CENTS: i64 = 100_000_000;
pub const MAX_CONTRIBUTORS: usize = 50;
pub const MAX_CATEGORIES: usize = 20;

/// Trims; an empty string becomes `None`.
fn clean(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

impl RawBookFields {
    /// Validates every field, collecting all errors so the client can fix them in one go.
    pub fn validate(self) -> Result<BookFields, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut err = |field: &str, message: String| errors.push(FieldError::new(field, message));

        let isbn = Isbn::parse(&self.isbn);
        if let Err(e) = &isbn {
            err("isbn", e.to_string());
        }
        let title = self.title.trim().to_owned();
        if title.is_empty() {
            err("title", "must not be empty".into());
        } else if title.chars().count() > MAX_TITLE {
            err("title", format!("must be at most {MAX_TITLE} characters"));
        }
        let subtitle = clean(self.subtitle);
        if subtitle
            .as_ref()
            .is_some_and(|s| s.chars().count() > MAX_TITLE)
        {
            err(
                "subtitle",
                format!("must be at most {MAX_TITLE} characters"),
            );
        }
        let description = clean(self.description);
        if description
            .as_ref()
            .is_some_and(|s| s.chars().count() > MAX_TEXT)
        {
            err(
                "description",
                format!("must be at most {MAX_TEXT} characters"),
            );
        }
        let language = self.language.trim().to_ascii_lowercase();
        if !is_iso639_1(&language) {
            err(
                "language",
                "must be an ISO 639-1 code such as en, fr or de".into(),
            );
        }
        let publisher = clean(self.publisher);
        if publisher
            .as_ref()
            .is_some_and(|s| s.chars().count() > MAX_SHORT)
        {
            err(
                "publisher",
                format!("must be at most {MAX_SHORT} characters"),
            );
        }
        if let Some(date) = self.publication_date {
            let latest = Utc::now().date_naive() + chrono::Duration::days(5 * 366);
            if date < NaiveDate::from_ymd_opt(1400, 1, 1).unwrap_or(date) || date > latest {
                err(
                    "publication_date",
                    "must be between 1400-01-01 and five years from now".into(),
                );
            }
        }
        if self.page_count.is_some_and(|p| !(1..=100_000).contains(&p)) {
            err("page_count", "must be between 1 and 100000".into());
        }
        if self.format.is_none() {
            err(
                "format",
                format!("must be one of {}", BookFormat::ALL.join(", ")),
            );
        }
        if self.list_price_cents <= 0 {
            err("list_price_cents", "must be greater than 0".into());
        } else if self.list_price_cents > MAX_PRICE_CENTS {
            err(
                "list_price_cents",
                format!("must be at most {MAX_PRICE_CENTS}"),
            );
        }
        let cover_url = clean(self.cover_url);
        if let Some(url) = &cover_url {
            if !(url.starts_with("https://") || url.starts_with("http://"))
                || url.len() > 2000
                || url.contains(char::is_whitespace)
            {
                err("cover_url", "must be an http(s) URL".into());
            }
        }
        match (isbn, self.format) {
            (Ok(isbn), Some(format)) if errors.is_empty() => Ok(BookFields {
                isbn,
                title,
                subtitle,
                description,
                language,
                publisher,
                publication_date: self.publication_date,
                page_count: self.page_count,
                format,
                list_price_cents: self.list_price_cents,
                cover_url,
                status: self.status.unwrap_or(BookStatus::Active),
            }),
            _ => Err(errors),
        }
    }
}

impl NewBook {
    pub fn fields(&self) -> RawBookFields {
        RawBookFields {
            isbn: self.isbn.clone(),
            title: self.title.clone(),
            subtitle: self.subtitle.clone(),
            description: self.description.clone(),
            language: self.language.clone(),
            publisher: self.publisher.clone(),
            publication_date: self.publication_date,
            page_count: self.page_count,
            format: Some(self.format),
            list_price_cents: self.list_price_cents,
            cover_url: self.cover_url.clone(),
            status: None,
        }
    }
}

impl BookRow {
    /// The row's fields, as a starting point for a patch.
    pub fn raw_fields(&self) -> RawBookFields {
        RawBookFields {
            isbn: self.isbn.clone(),
            title: self.title.clone(),
            subtitle: self.subtitle.clone(),
            description: self.description.clone(),
            language: self.language.clone(),
            publisher: self.publisher.clone(),
            publication_date: self.publication_date,
            page_count: self.page_count,
            format: BookFormat::parse(&self.format),
            list_price_cents: self.list_price_cents,
            cover_url: self.cover_url.clone(),
            status: Some(if self.status == "archived" {
                BookStatus::Archived
            } else {
                BookStatus::Active
            }),
        }
    }
}

impl BookPatch {
    /// Applies the patch to a book's current fields.
    pub fn apply(&self, mut raw: RawBookFields) -> RawBookFields {
        if let Some(v) = &self.isbn {
            raw.isbn = v.clone();
        }
        if let Some(v) = &self.title {
            raw.title = v.clone();
        }
        if let Some(v) = &self.subtitle {
            raw.subtitle = v.clone();
        }
        if let Some(v) = &self.description {
            raw.description = v.clone();
        }
        if let Some(v) = &self.language {
            raw.language = v.clone();
        }
        if let Some(v) = &self.publisher {
            raw.publisher = v.clone();
        }
        if let Some(v) = self.publication_date {
            raw.publication_date = v;
        }
        if let Some(v) = self.page_count {
            raw.page_count = v;
        }
        if let Some(v) = self.format {
            raw.format = Some(v);
        }
        if let Some(v) = self.list_price_cents {
            raw.list_price_cents = v;
        }
        if let Some(v) = &self.cover_url {
            raw.cover_url = v.clone();
        }
        if let Some(v) = self.status {
            raw.status = Some(v);
        }
        raw
    }
}

/// Checks the contributor and category lists' shapes (existence is checked against the database).
pub fn check_links(authors: &[BookAuthorInput], category_ids: &[i64]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if authors.len() > MAX_CONTRIBUTORS {
        errors.push(FieldError::new(
            "authors",
            format!("at most {MAX_CONTRIBUTORS} contributors"),
        ));
    }
    for (i, a) in authors.iter().enumerate() {
        if authors[..i]
            .iter()
            .any(|b| b.author_id == a.author_id && b.role == a.role)
        {
            errors.push(FieldError::new(
                format!("authors[{i}]"),
                "lists the same author in the same role twice",
            ));
        }
    }
    if category_ids.len() > MAX_CATEGORIES {
        errors.push(FieldError::new(
            "category_ids",
            format!("at most {MAX_CATEGORIES} categories"),
        ));
    }
    for (i, id) in category_ids.iter().enumerate() {
        if category_ids[..i].contains(id) {
            errors.push(FieldError::new(
                format!("category_ids[{i}]"),
                "is listed twice",
            ));
        }
    }
    errors
}

/// Every ISO 639-1 language code.
const ISO_639_1: &str = "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce \
    ch co cr cs cu cv cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv \
    ha he hi ho hr ht hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr \
    ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn \
    no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so \
    sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh \
    yi yo za zh zu";

pub fn is_iso639_1(code: &str) -> bool {
    code.len() == 2 && ISO_639_1.split_whitespace().any(|c| c == code)
}

crate::query_enum! {
    /// The `status` filter of `GET /books`.
    pub enum BookStatusFilter {
        /// For sale (the default).
        Active = "active",
        Archived = "archived",
        Any = "any",
    }
    expected = "must be active, archived or any"
}

crate::query_enum! {
    /// Orders of `GET /books`; a leading `-` sorts descending. `relevance` needs `q`.
    pub enum BookSort {
        Relevance = "relevance",
        RelevanceDesc = "-relevance",
        Title = "title",
        TitleDesc = "-title",
        Price = "price",
        PriceDesc = "-price",
        PublicationDate = "publication_date",
        PublicationDateDesc = "-publication_date",
        Created = "created",
        CreatedDesc = "-created",
    }
    expected = "must be one of relevance, title, price, publication_date, created (prefix - for descending)"
}

/// An ISO 639-1 language code, taken in either case and kept in lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanguageCode(String);

impl LanguageCode {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for LanguageCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = std::borrow::Cow::<str>::deserialize(d)?;
        let code = raw.trim().to_ascii_lowercase();
        if is_iso639_1(&code) {
            Ok(LanguageCode(code))
        } else {
            Err(serde::de::Error::custom(
                "must be an ISO 639-1 code such as en",
            ))
        }
    }
}

impl utoipa::PartialSchema for LanguageCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("An ISO 639-1 language code"))
            .enum_values(Some(ISO_639_1.split_whitespace()))
            .into()
    }
}

impl ToSchema for LanguageCode {}

/// Query of `GET /books`.
#[derive(Debug, Clone, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BookQuery {
    /// Full-text search over title, subtitle, author names and ISBN; the last word matches as a
    /// prefix, so partial input works for type-ahead. An exact ISBN (either form) finds that book.
    pub q: Option<String>,
    pub author_id: Option<i64>,
    /// Includes the books of sub-categories.
    pub category_id: Option<i64>,
    /// ISO 639-1 code (either case).
    #[param(inline)]
    pub language: Option<LanguageCode>,
    pub format: Option<BookFormat>,
    #[param(minimum = 0)]
    pub min_price_cents: Option<i64>,
    #[param(minimum = 0)]
    pub max_price_cents: Option<i64>,
    /// `true`: only books with copies available to sell.
    pub in_stock: Option<bool>,
    /// `active` (default), `archived` or `any`.
    #[serde(default, deserialize_with = "crate::http::query::one_of")]
    #[param(inline)]
    pub status: Option<BookStatusFilter>,
    /// `relevance` (default with `q`), `title` (default otherwise), `price`, `publication_date`,
    /// `created`; prefix with `-` for descending.
    #[serde(default, deserialize_with = "crate::http::query::one_of")]
    #[param(inline)]
    pub sort: Option<BookSort>,
    #[param(minimum = 1, default = 1)]
    pub page: Option<i64>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub per_page: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = authors)]
pub struct AuthorRow {
    pub id: i64,
    pub name: String,
    pub bio: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// An author, editor, translator or illustrator.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"id": 1, "name": "Ursula K. Le Guin", "bio": "American author.",
    "book_count": 3, "created_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:00:00Z"}))]
pub struct AuthorView {
    pub id: i64,
    pub name: String,
    pub bio: Option<String>,
    /// Books this author contributed to.
    pub book_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Body of `POST /authors`.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[schema(example = json!({"name": "Ursula K. Le Guin", "bio": "American author."}))]
#[serde(deny_unknown_fields)]
pub struct NewAuthor {
    #[validate(length(min = 1, max = 300))]
    #[schema(min_length = 1, max_length = 300)]
    pub name: String,
    #[validate(length(max = 20000))]
    #[schema(max_length = 20000)]
    pub bio: Option<String>,
}

/// Body of `PATCH /authors/{id}`.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[schema(example = json!({"bio": "American author of science fiction and fantasy."}))]
#[serde(deny_unknown_fields)]
pub struct AuthorPatch {
    #[validate(length(min = 1, max = 300))]
    #[schema(min_length = 1, max_length = 300)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub bio: Option<Option<String>>,
}

/// Query of `GET /authors`.
#[derive(Debug, Clone, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuthorQuery {
    /// Case-insensitive substring of the name.
    pub q: Option<String>,
    #[param(minimum = 1, default = 1)]
    pub page: Option<i64>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub per_page: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = categories)]
pub struct CategoryRow {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub parent_id: Option<i64>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A node of the category tree.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"id": 2, "name": "Science fiction", "description": null, "parent_id": 1,
    "children": [3], "book_count": 12,
    "created_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:00:00Z"}))]
pub struct CategoryView {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub parent_id: Option<i64>,
    /// Ids of the direct sub-categories.
    pub children: Vec<i64>,
    /// Books filed directly under this category.
    pub book_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Body of `POST /categories`.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[schema(example = json!({"name": "Science fiction", "parent_id": 1}))]
#[serde(deny_unknown_fields)]
pub struct NewCategory {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[validate(length(max = 5000))]
    #[schema(max_length = 5000)]
    pub description: Option<String>,
    pub parent_id: Option<i64>,
}

/// Body of `PATCH /categories/{id}`; `parent_id: null` makes it top-level.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[schema(example = json!({"name": "Sci-fi"}))]
#[serde(deny_unknown_fields)]
pub struct CategoryPatch {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub parent_id: Option<Option<i64>>,
}

/// Query of `GET /categories`.
#[derive(Debug, Clone, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CategoryQuery {
    /// Only the direct children of this category; `0` for the top level.
    pub parent_id: Option<i64>,
    #[param(minimum = 1, default = 1)]
    pub page: Option<i64>,
    #[param(minimum = 1, maximum = 100, default = 100)]
    pub per_page: Option<i64>,
}

/// Outcome of `POST /books/import`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"created": 2, "updated": 1,
    "failed": [{"row": 4, "field": "isbn", "message": "has a wrong check digit"}]}))]
pub struct ImportReport {
    pub created: u64,
    pub updated: u64,
    /// Rows that were skipped, with the reason.
    pub failed: Vec<ImportFailure>,
}

/// One skipped CSV row.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportFailure {
    /// Line number in the file (the header is line 1).
    pub row: u64,
    pub field: String,
    pub message: String,
}

/// The errors as an API error, or nothing.
pub fn into_validation(errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}
