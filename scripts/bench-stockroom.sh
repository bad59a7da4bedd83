#!/usr/bin/env bash
# Stockroom benchmark (benches/stockroom_load.rs) against a release build, on SQLite and on
# PostgreSQL: imports and stocks 10,000 books once, then on a fresh copy of that database per
# scenario times receiving 500-line purchase orders, opening, counting and completing 10,000-line
# stocktakes (every line differing, and ~10% differing), and measures webhook delivery: the lag of
# order.created events at 200 orders per second, and the delivery rate while a backlog drains.
# Checks the ledger after every receipt and stocktake, and that every event arrives exactly once.
#
# Usage: scripts/bench-stockroom.sh [sqlite|postgres|all]     (default: all)
#
# Environment:
#   BENCH_PG_URL         PostgreSQL server to create the bench database on
#                        (default postgres://postgres@127.0.0.1:5432/postgres; needs CREATEDB)
#   BENCH_SECONDS        measured seconds of the paced order run (default 10, after a 2 s warm-up)
#   BENCH_BOOKS          books to import and stock (default 10000)
#   BENCH_RECEIPTS       purchase orders received, without and with a webhook (default 5 each)
#   BENCH_STOCKTAKES     stocktakes per variance mode (default 3)
#   BENCH_ORDER_RATE     orders per second of the paced run (default 200)
#   BENCH_CONNECTIONS    clients of the order burst (default 32), BENCH_BURST_SECONDS its length
#                        (default 5), BENCH_DRAIN_SECONDS the longest wait for the backlog (180)
#   BOOKSTORE_WEBHOOK_POLL_MS, BOOKSTORE_DB_POOL_SIZE, ...  passed on to the server as usual
#   CARGO_TARGET_DIR     honoured as usual (default target/)
# The result tables are also appended to bench-out/stockroom-<timestamp>.md.
set -euo pipefail

BENCH_NAME=stockroom_load
BENCH_TAG=stockroom
SQLITE_FILE=stockroom.db
PG_DB=bookstore_stockroom_bench
# shellcheck source=scripts/bench-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"

status=0
run_backend sqlite || status=$?
run_backend postgres || status=$?
show_results
exit "$status"
