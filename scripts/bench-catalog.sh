#!/usr/bin/env bash
# Catalog load benchmark (benches/catalog_load.rs) against a release build, on SQLite and on
# PostgreSQL: loads 100,000 books through the CSV import, then measures GET /api/v1/books/{id} and
# GET /api/v1/books?q=<word> at 32 concurrent connections, and the server's idle and peak RSS.
#
# Usage: scripts/bench-catalog.sh [sqlite|postgres|all]        (default: all)
#
# Environment:
#   BENCH_PG_URL       PostgreSQL server to create the bench database on
#                      (default postgres://postgres@127.0.0.1:5432/postgres; needs CREATEDB)
#   BENCH_SECONDS      measured seconds per scenario (default 10, after a 2 s warm-up)
#   BENCH_BOOKS        books to load (default 100000), BENCH_BATCH rows per import (10000)
#   BENCH_CONNECTIONS  concurrent connections (default 32)
#   CARGO_TARGET_DIR   honoured as usual (default target/)
# The result tables are also appended to bench-out/catalog-<timestamp>.md.
set -euo pipefail

BENCH_NAME=catalog_load
BENCH_TAG=catalog
SQLITE_FILE=bench.db
PG_DB=bookstore_bench
# shellcheck source=scripts/bench-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"

run_backend sqlite
run_backend postgres
show_results
