//! The book catalog: books, authors, categories, ISBNs, search and CSV import.

pub mod authors;
pub mod books;
pub mod cache;
pub mod categories;
pub mod import;
pub mod isbn;
pub mod model;
pub mod routes;
pub mod search;
