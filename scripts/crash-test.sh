#!/usr/bin/env bash
# Crash test (benches/crash_test.rs) against a release build, on SQLite and/or PostgreSQL: 16
# clients place orders, pay them by card (tok_visa, with an Idempotency-Key, retried with the
# same key), fulfil or cancel them (refunds) and post receipts, while the server is killed with
# SIGKILL three times at random moments and restarted on the same database. Once the load stops
# and the server's sweep has settled every `processing` payment and `pending` refund, it checks
# in the database (and in the test payment provider's journal) that every order has its lines
# and events and its total is their sum, the last event is the order's status, on_hand is the
# ledger's sum, reserved is the open lines of live orders, paid orders are paid in full,
# sale movements are the fulfilled lines, cancelled paid orders are refunded, no
# Idempotency-Key is stuck, no card was charged without a payment row (or twice), and no
# payment is left processing: one line per invariant, then a verdict. Exit status 1 if any
# invariant failed.
#
# Usage: scripts/crash-test.sh [sqlite|postgres|all]        (default: all)
#
# Environment:
#   BENCH_PG_URL       PostgreSQL server to create the test database on
#                      (default postgres://postgres@127.0.0.1:5432/postgres; needs CREATEDB)
#   CRASH_CLIENTS      concurrent clients (default 16, two of them posting receipts)
#   CRASH_KILLS        kill -9 restarts (default 3), each after CRASH_MIN_GAP_MS..CRASH_MAX_GAP_MS
#                      of load (default 2000..8000); CRASH_TAIL_SECS of load after the last (5)
#   CRASH_SEED         seed of the random choices (default: the clock; printed)
#   CRASH_LEASE_SECS   the server's card payment lease (default 2)
#   CRASH_SETTLE_SECS  how long to wait for payments and refunds to settle (default 180)
#   BOOKSTORE_BIN      the server binary (default <target>/release/bookstore)
#   CARGO_TARGET_DIR   honoured as usual (default target/)
# The invariant lines are also appended to bench-out/crash-<timestamp>.md; when a backend fails,
# its provider journal and server log are kept in bench-out/crash-<backend>-<timestamp>/.
set -euo pipefail

BENCH_NAME=crash_test
BENCH_TAG=crash
SQLITE_FILE=crash.db
PG_DB=bookstore_crash_test
# shellcheck source=scripts/bench-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"

export CRASH_DIR
# keep_evidence BACKEND: copies the failed run's journal and server log to bench-out/.
keep_evidence() {
    local dest
    dest="bench-out/crash-$1-$(date +%Y%m%d-%H%M%S)"
    mkdir -p "$dest"
    cp -a "$CRASH_DIR"/. "$dest"/ 2>/dev/null || true
    echo "==> $1 failed: provider journal and server log kept in $dest"
}

status=0
CRASH_DIR="$workdir/sqlite-run"
run_backend sqlite || {
    status=$?
    keep_evidence sqlite
}
CRASH_DIR="$workdir/postgres-run"
run_backend postgres || {
    status=$?
    keep_evidence postgres
}
show_results
exit "$status"
