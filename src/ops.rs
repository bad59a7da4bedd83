//! Liveness and readiness, outside the versioned API for load balancers and orchestrators.

use crate::app::AppState;
use crate::db;
use crate::error::ApiError;
use actix_web::{get, web, HttpResponse};
use diesel::connection::SimpleConnection;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, body = Health, example = json!({"status": "ok"}))))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// The process can serve requests: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses(
        (status = 200, body = Health, example = json!({"status": "ok"})),
        (status = 503, body = Problem, content_type = "application/problem+json",
         description = "The database cannot be reached")))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    db::run(&state.pool, |conn| {
        conn.batch_execute("SELECT 1")
            .map_err(|e| ApiError::Unavailable(format!("database check failed: {e}")))
    })
    .await?;
    Ok(HttpResponse::Ok().json(Health { status: "ok" }))
}

#[derive(OpenApi)]
#[openapi(paths(healthz, readyz), components(schemas(Health)))]
pub struct OpsApi;

use crate::error::Problem;
