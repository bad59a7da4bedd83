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

cd "$(dirname "${BASH_SOURCE[0]}")/.."

which_backends="${1:-all}"
case "$which_backends" in
    sqlite | postgres | all) ;;
    *)
        echo "usage: $0 [sqlite|postgres|all]" >&2
        exit 2
        ;;
esac

PG_URL="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PG_DB=bookstore_orders_bench
target_dir="${CARGO_TARGET_DIR:-target}"
export BOOKSTORE_BIN="${BOOKSTORE_BIN:-$target_dir/release/bookstore}"

mkdir -p bench-out
export BENCH_OUT
BENCH_OUT="$(pwd)/bench-out/orders-$(date +%Y%m%d-%H%M%S).md"

workdir=$(mktemp -d)
pg_created=0
cleanup() {
    rm -rf "$workdir"
    if [ "$pg_created" -eq 1 ]; then
        psql "$PG_URL" -qX -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

echo "==> cargo build --release"
cargo build --release
# Compile the bench up front so that its build time is not mixed into the runs' output.
cargo bench --bench orders_load --no-run

status=0
if [ "$which_backends" = sqlite ] || [ "$which_backends" = all ]; then
    echo
    echo "==> SQLite ($workdir/orders.db)"
    BENCH_DATABASE_URL="$workdir/orders.db" cargo bench --bench orders_load || status=$?
fi

if [ "$which_backends" = postgres ] || [ "$which_backends" = all ]; then
    echo
    pg_bench_url="${PG_URL%/*}/$PG_DB"
    echo "==> PostgreSQL (${pg_bench_url})"
    psql "$PG_URL" -qX -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" \
        -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" \
        -c "CREATE DATABASE $PG_DB"
    pg_created=1
    BENCH_DATABASE_URL="$pg_bench_url" cargo bench --bench orders_load || status=$?
fi

echo
echo "==> results (also in ${BENCH_OUT#"$(pwd)"/})"
cat "$BENCH_OUT" 2>/dev/null || echo "(no results)"
exit "$status"
