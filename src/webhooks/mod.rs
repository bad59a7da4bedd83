//! Webhooks: telling the outside world what happened. Changes write their events to an outbox in
//! their own transaction ([`outbox::emit`]); a background worker ([`delivery`]) sends them after
//! commit, signed, with retries, to the endpoints admins registered.

pub mod delivery;
pub mod outbox;
pub mod routes;
