//! The book catalog: books, authors, categories, ISBNs, search and CSV import.

pub mod routes;
