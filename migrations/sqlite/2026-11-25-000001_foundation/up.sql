-- Accounts and the book catalog.

CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX customers_email_idx ON customers (lower(email));

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    -- Stored lower-cased, so uniqueness is case-insensitive.
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'staff', 'customer')),
    active BOOLEAN NOT NULL DEFAULT 1,
    customer_id BIGINT REFERENCES customers (id),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE refresh_tokens (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Every token rotated from one login shares a family; re-use of a rotated token revokes it.
    family TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    expires_at TIMESTAMP NOT NULL,
    rotated_at TIMESTAMP,
    revoked_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

CREATE TABLE books (
    id INTEGER PRIMARY KEY,
    isbn TEXT NOT NULL UNIQUE CHECK (length(isbn) = 13),
    title TEXT NOT NULL,
    subtitle TEXT,
    description TEXT,
    language TEXT NOT NULL,
    publisher TEXT,
    publication_date DATE,
    page_count INTEGER CHECK (page_count > 0),
    format TEXT NOT NULL CHECK (format IN ('hardcover', 'paperback', 'ebook', 'audiobook')),
    list_price_cents BIGINT NOT NULL CHECK (list_price_cents > 0),
    cover_url TEXT,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX books_title_idx ON books (lower(title), id);
CREATE INDEX books_price_idx ON books (list_price_cents, id);
CREATE INDEX books_publication_idx ON books (publication_date, id);
CREATE INDEX books_created_idx ON books (created_at, id);

CREATE TABLE authors (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    bio TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX authors_name_idx ON authors (lower(name));

CREATE TABLE categories (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT,
    parent_id BIGINT REFERENCES categories (id),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
-- Sibling categories have distinct names; top-level ones count as siblings of parent 0.
CREATE UNIQUE INDEX categories_sibling_name_idx ON categories (COALESCE(parent_id, 0), lower(name));

CREATE TABLE book_authors (
    book_id BIGINT NOT NULL REFERENCES books (id) ON DELETE CASCADE,
    author_id BIGINT NOT NULL REFERENCES authors (id),
    position INTEGER NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('author', 'editor', 'translator', 'illustrator')),
    PRIMARY KEY (book_id, position)
);
CREATE INDEX book_authors_author_idx ON book_authors (author_id, book_id);

CREATE TABLE book_categories (
    book_id BIGINT NOT NULL REFERENCES books (id) ON DELETE CASCADE,
    category_id BIGINT NOT NULL REFERENCES categories (id),
    PRIMARY KEY (book_id, category_id)
);
CREATE INDEX book_categories_category_idx ON book_categories (category_id, book_id);

-- Full-text index over books, keyed by book id (rowid); kept up to date by the application
-- (catalog::search::reindex). Prefix indexes make type-ahead queries cheap.
CREATE VIRTUAL TABLE books_fts USING fts5(
    title, subtitle, authors, isbn,
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3 4'
);
-- Relevance: bm25 with column weights title 10, subtitle 3, authors 6, isbn 10. Set as the table's
-- rank function so that `ORDER BY rank LIMIT n` takes FTS5's fast top-n path.
INSERT INTO books_fts (books_fts, rank) VALUES ('rank', 'bm25(10.0, 3.0, 6.0, 10.0)');
