# Shared setup of the load-benchmark scripts (scripts/bench-catalog.sh, scripts/bench-orders.sh,
# scripts/bench-stockroom.sh); not run on its own. The script sets, then sources this with its
# arguments:
#   BENCH_NAME   the cargo bench target (catalog_load, orders_load, stockroom_load)
#   BENCH_TAG    the results file's prefix: bench-out/<tag>-<timestamp>.md
#   SQLITE_FILE  the SQLite database's file name in the temporary directory
#   PG_DB        the database created (and dropped afterwards) on BENCH_PG_URL
# It checks the argument ([sqlite|postgres|all], default all), exports BOOKSTORE_BIN and
# BENCH_OUT, makes a temporary directory removed on exit (with the PostgreSQL database), builds
# the release server and the bench, and defines run_backend and show_results.

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
target_dir="${CARGO_TARGET_DIR:-target}"
export BOOKSTORE_BIN="${BOOKSTORE_BIN:-$target_dir/release/bookstore}"

mkdir -p bench-out
export BENCH_OUT
BENCH_OUT="$(pwd)/bench-out/$BENCH_TAG-$(date +%Y%m%d-%H%M%S).md"

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
cargo bench --bench "$BENCH_NAME" --no-run

# run_backend sqlite|postgres: runs the bench on that backend if the argument asks for it (SQLite
# on a new file in the temporary directory, PostgreSQL on a new $PG_DB); its status is the bench's.
run_backend() {
    [ "$which_backends" = "$1" ] || [ "$which_backends" = all ] || return 0
    echo
    if [ "$1" = sqlite ]; then
        echo "==> SQLite ($workdir/$SQLITE_FILE)"
        BENCH_DATABASE_URL="$workdir/$SQLITE_FILE" cargo bench --bench "$BENCH_NAME"
    else
        local pg_bench_url="${PG_URL%/*}/$PG_DB"
        echo "==> PostgreSQL (${pg_bench_url})"
        # `|| exit`: a failure here ends the script even where run_backend's status is tested.
        psql "$PG_URL" -qX -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" \
            -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" \
            -c "CREATE DATABASE $PG_DB" || exit
        pg_created=1
        BENCH_DATABASE_URL="$pg_bench_url" cargo bench --bench "$BENCH_NAME"
    fi
}

show_results() {
    echo
    echo "==> results (also in ${BENCH_OUT#"$(pwd)"/})"
    cat "$BENCH_OUT" 2>/dev/null || echo "(no results)"
}
