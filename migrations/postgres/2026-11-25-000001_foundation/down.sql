DROP TABLE book_categories;
DROP TABLE book_authors;
DROP TABLE categories;
DROP TABLE authors;
DROP TABLE books;
DROP TABLE refresh_tokens;
DROP TABLE users;
DROP TABLE customers;
