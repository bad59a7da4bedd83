//! Builds the actix application: shared state, middleware, the `/api/v1` scope of every area, the
//! ops endpoints, and the OpenAPI document with its offline docs UI.

use crate::auth::accounts::AccountCache;
use crate::auth::throttle::{Limits, LoginThrottle};
use crate::auth::token::TokenKeys;
use crate::catalog::cache::SearchCache;
use crate::config::Settings;
use crate::db::{self, Pool};
use crate::error::{problem_response, ApiError, FieldError, Problem};
use crate::http::extract::JsonLimit;
use crate::http::middleware::{head_as_get, normalize_error, request_id};
use crate::{auth, catalog, ops};
use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::{from_fn, ErrorHandlers, Logger};
use actix_web::{web, App, HttpServer};
use std::net::TcpListener;
use std::time::Duration;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

/// What every handler can reach.
pub struct AppState {
    pub pool: Pool,
    pub settings: Settings,
    pub tokens: TokenKeys,
    pub login_throttle: LoginThrottle,
    /// Accounts read for authorization in the last second (see [`crate::auth::accounts`]).
    pub accounts: AccountCache,
    pub search_cache: SearchCache,
    /// Sends webhook deliveries (and pings) to public addresses only (unless
    /// `webhook_allow_private`); its timeout is `webhook_timeout`.
    pub webhook_client: crate::webhooks::egress::WebhookClient,
    /// Charges and refunds cards (the built-in test provider for now).
    pub payment_provider: std::sync::Arc<dyn crate::orders::payments::PaymentProvider>,
}

impl AppState {
    /// Connects, migrates and assembles the state, with the built-in test payment provider
    /// (journaled to `test_provider_journal` when set).
    pub fn init(settings: Settings) -> Result<web::Data<AppState>, String> {
        use crate::orders::payments::TestProvider;
        let provider = match &settings.test_provider_journal {
            Some(path) => TestProvider::with_journal(path).map_err(|e| {
                format!(
                    "cannot read the test provider journal {}: {e}",
                    path.display()
                )
            })?,
            None => TestProvider::new(),
        };
        AppState::init_with_provider(settings, std::sync::Arc::new(provider))
    }

    /// As [`AppState::init`], with another payment provider.
    pub fn init_with_provider(
        settings: Settings,
        payment_provider: std::sync::Arc<dyn crate::orders::payments::PaymentProvider>,
    ) -> Result<web::Data<AppState>, String> {
        let pool = db::build_pool(&settings.database_url, settings.pool_size)?;
        let mut conn = pool
            .get()
            .map_err(|e| format!("cannot get a connection: {e}"))?;
        let applied = db::run_migrations(&mut conn)?;
        if !applied.is_empty() {
            log::info!("applied migrations: {}", applied.join(", "));
        }
        drop(conn);
        let webhook_client = crate::webhooks::egress::WebhookClient::new(
            settings.webhook_timeout,
            settings.webhook_allow_private,
        )?;
        Ok(web::Data::new(AppState {
            webhook_client,
            tokens: TokenKeys::new(&settings),
            search_cache: SearchCache::new(settings.search_cache_ttl),
            login_throttle: LoginThrottle::new(Limits::of(&settings)),
            accounts: AccountCache::new(),
            payment_provider,
            pool,
            settings,
        }))
    }
}

/// The OpenAPI document: the shared parts here, each area's paths merged in [`openapi`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Bookstore API",
        description = "The system of record for selling books: catalog, stock, orders, customers \
                       and analytics. Errors are RFC 9457 `application/problem+json`; money is in \
                       integer minor units (`*_cents`) of the store currency.",
        version = "1.0.0",
        license(name = "MIT")
    ),
    components(schemas(Problem, FieldError)),
    modifiers(&BearerAuth),
    tags(
        (name = "ops", description = "Health and readiness"),
        (name = "auth", description = "Sign-up, login, tokens"),
        (name = "users", description = "User administration (admin)"),
        (name = "books", description = "The book catalog"),
        (name = "authors", description = "Authors"),
        (name = "categories", description = "The category tree"),
        (name = "inventory", description = "Stock levels, receipts, adjustments and the movements ledger (staff)"),
        (name = "orders", description = "Orders: placing (with stock reservation), listing, status history, cancellation"),
        (name = "stocktakes", description = "Counting stock and posting the variance (staff)"),
        (name = "alerts", description = "Low-stock alerts (staff)"),
        (name = "suppliers", description = "Suppliers (staff)"),
        (name = "purchase-orders", description = "Purchase orders to suppliers and their receipts (staff)"),
        (name = "webhooks", description = "Webhook endpoints, deliveries and replays (admin)"),
    )
)]
struct BaseApi;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("Access token from POST /api/v1/auth/login"))
                    .build(),
            ),
        );
    }
}

/// The whole OpenAPI document, as served and as committed in `openapi/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = BaseApi::openapi();
    doc.merge(ops::OpsApi::openapi());
    doc.merge(auth::routes::AuthApi::openapi());
    doc.merge(catalog::routes::CatalogApi::openapi());
    doc.merge(crate::inventory::routes::InventoryApi::openapi());
    doc.merge(crate::orders::routes::OrdersApi::openapi());
    doc.merge(crate::inventory::stocktakes::routes::StocktakesApi::openapi());
    doc.merge(crate::inventory::purchasing::routes::PurchasingApi::openapi());
    doc.merge(crate::webhooks::routes::WebhooksApi::openapi());
    crate::http::contract::apply(&mut doc);
    doc
}

/// The document as pretty JSON with a trailing newline (the committed and served form).
pub fn openapi_json() -> String {
    let json = openapi().to_pretty_json().unwrap_or_default();
    let mut json = crate::http::contract::fix_link_keys(&json);
    json.push('\n');
    json
}

fn cors(settings: &Settings) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([
            "authorization",
            "content-type",
            "if-match",
            "idempotency-key",
            "x-request-id",
        ])
        .expose_headers([
            "etag",
            "idempotent-replayed",
            "location",
            "retry-after",
            "x-request-id",
        ])
        .max_age(3600);
    for origin in &settings.cors_origins {
        cors = if origin == "*" {
            cors.allow_any_origin()
        } else {
            cors.allowed_origin(origin)
        };
    }
    cors
}

/// The application as `main` and the tests run it.
pub fn build(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let json_limit = state.settings.json_limit_bytes;
    let cors = cors(&state.settings);
    App::new()
        .app_data(state)
        .app_data(JsonLimit(json_limit))
        .app_data(
            web::PathConfig::default().error_handler(|err, _| {
                ApiError::NotFound(format!("no such resource ({err})")).into()
            }),
        )
        .app_data(web::PayloadConfig::default().limit(json_limit))
        .wrap(from_fn(head_as_get))
        .wrap(ErrorHandlers::new().default_handler(normalize_error))
        .wrap(cors)
        .wrap(from_fn(request_id))
        .wrap(Logger::new(
            "%{r}a \"%r\" %s %b %Dms request_id=%{x-request-id}o",
        ))
        .configure(ops::configure)
        .service(SwaggerUi::new("/docs/{_:.*}").external_url_unchecked(
            "/api/v1/openapi.json",
            serde_json::from_str(&openapi_json()).unwrap_or_default(),
        ))
        .service(
            web::scope("/api/v1")
                .configure(auth::routes::configure)
                .configure(catalog::routes::configure)
                .configure(crate::inventory::routes::configure)
                .configure(crate::orders::routes::configure)
                .configure(crate::inventory::purchasing::routes::configure)
                .configure(crate::webhooks::routes::configure),
        )
        .default_service(web::to(|| async {
            problem_response(StatusCode::NOT_FOUND, "no resource at this path")
        }))
}

/// Starts serving on `listener`; SIGINT/SIGTERM drain in-flight requests before exit.
pub fn start(listener: TcpListener, state: web::Data<AppState>) -> std::io::Result<Server> {
    let workers = state
        .settings
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    // Database work runs on each worker's blocking threads; more of them than pooled connections
    // would only wait for a connection while holding memory of their own.
    let blocking_threads = (state.settings.pool_size as usize).div_ceil(workers).max(1);
    let factory_state = state.clone();
    let server = HttpServer::new(move || build(factory_state.clone()))
        .workers(workers)
        .worker_max_blocking_threads(blocking_threads)
        .shutdown_timeout(Duration::from_secs(30).as_secs())
        .listen(listener)?;
    crate::webhooks::delivery::spawn(state.clone());
    crate::maintenance::spawn(state);
    Ok(server.run())
}
