# syntax=docker/dockerfile:1
# The bookstore API as a small runtime image. Build: docker build -t bookstore .
# Run with PostgreSQL: see docker-compose.yml.

# ---- build -------------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# Dependencies first, against placeholder sources, so that this layer stays cached until
# Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
# Build flags for the bundled SQLite and the allocator (see the file).
COPY .cargo ./.cargo
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > benches/catalog_load.rs \
    && cargo build --release --locked --bin bookstore \
    && rm -rf src benches

# The application itself (migrations are embedded in the binary at compile time).
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin bookstore \
    && cp target/release/bookstore /usr/local/bin/bookstore

# ---- runtime -----------------------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/bookstore --create-home bookstore
COPY --from=builder /usr/local/bin/bookstore /usr/local/bin/bookstore

USER bookstore
# Without DATABASE_URL the service keeps an SQLite file here (the compose file uses PostgreSQL).
WORKDIR /var/lib/bookstore
ENV BOOKSTORE_BIND=0.0.0.0:8080 \
    RUST_LOG=info
EXPOSE 8080
# The health check lives in docker-compose.yml (curl http://localhost:8080/readyz).
ENTRYPOINT ["/usr/local/bin/bookstore"]
CMD ["serve"]
