//! HTTP routes of `/inventory/stocktakes` (staff), registered inside the `/inventory` scope.

use actix_web::web;
use utoipa::OpenApi;

pub fn configure(_cfg: &mut web::ServiceConfig) {}

#[derive(OpenApi)]
#[openapi()]
pub struct StocktakesApi;
