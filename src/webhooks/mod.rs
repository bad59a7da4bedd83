//! Webhooks: telling the outside world what happened. Changes write their events to an outbox in
//! their own transaction ([`outbox::emit`]); a background worker ([`delivery`]) sends them after
//! commit, signed ([`signature`]), with retries, to the endpoints admins registered
//! ([`routes`], [`service`]), and only to public addresses ([`egress`]).
//!
//! Delivery is at least once: a receiver may see an event more than once (a retry after a lost
//! answer, a crash between sending and recording, an admin's replay) and deduplicates by the
//! event id (`Bookstore-Event-Id`, the body's `id`). Events are not ordered across retries.

pub mod delivery;
pub mod egress;
pub mod model;
pub mod outbox;
pub mod routes;
pub mod service;
pub mod signature;
