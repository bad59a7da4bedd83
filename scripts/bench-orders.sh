#!/usr/bin/env bash
# Order-path benchmark (benches/orders_load.rs) against a release build, on SQLite and on
# PostgreSQL: imports and stocks 10,000 books, then measures POST /api/v1/orders at 32 concurrent
# clients (orders spread over the books, and every client buying one hot book) beside the raw
# ceiling of the same transaction (orders::service::create_order through diesel, no HTTP), checks
# that nothing was oversold, and races 1,600 orders for 1,000 copies of one book.
#
# Usage: scripts/bench-orders.sh [sqlite|postgres|all]        (default: all)
#
# Environment:
#   BENCH_PG_URL       PostgreSQL server to create the bench database on
#                      (default postgres://postgres@127.0.0.1:5432/postgres; needs CREATEDB)
#   BENCH_SECONDS      measured seconds per run (default 10, after a 2 s warm-up)
#   BENCH_BOOKS        books to import and stock (default 10000)
#   BENCH_CONNECTIONS  concurrent HTTP clients (default 32); BENCH_RAW_THREADS raw threads (same)
#   BENCH_RAW_POOL     connections of the raw run's pool (default 32)
#   BOOKSTORE_DB_POOL_SIZE, BOOKSTORE_WORKERS, ...  passed on to the server as usual
#   CARGO_TARGET_DIR   honoured as usual (default target/)
# The result tables are also appended to bench-out/orders-<timestamp>.md.
set -euo pipefail

BENCH_NAME=orders_load
BENCH_TAG=orders
SQLITE_FILE=orders.db
PG_DB=bookstore_orders_bench
# shellcheck source=scripts/bench-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"

status=0
run_backend sqlite || status=$?
run_backend postgres || status=$?
show_results
exit "$status"
