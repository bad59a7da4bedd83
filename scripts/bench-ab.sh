#!/usr/bin/env bash
# A/B load benchmark (issue #11): the current tree (candidate) against a base commit (baseline), on
# the same machine, runs of the two in alternation, so that a change of speed is told apart from
# the machine's own drift (other load, thermal state, the database's caches).
#
# Usage: scripts/bench-ab.sh BASE_REV [orders|catalog|stockroom|all] [sqlite|postgres|all]
#                                                                    (defaults: all, all)
#
# Builds, each niced (nice -n 10) and each with `cargo build --release` then
# `cargo bench --bench <name> --no-run`:
#   baseline   in a detached git worktree of BASE_REV, $BENCH_AB_CACHE/<commit>/src, with its own
#              target directory $BENCH_AB_CACHE/<commit>/target; both are kept, so the next run
#              against the same commit builds nothing (remove one with
#              `git worktree remove $BENCH_AB_CACHE/<commit>/src` and `rm -rf $BENCH_AB_CACHE/<commit>`)
#   candidate  in this tree, uncommitted changes included (CARGO_TARGET_DIR, default target/)
# Each side's server and bench executables (found through `--message-format=json`) are copied to a
# temporary directory and run from there, so a rebuild of either tree during the runs changes
# nothing and nothing is rebuilt between runs.
#
# Then for each bench and backend, ROUNDS rounds of one baseline and one candidate run, baseline
# first in odd rounds and candidate first in even ones (A B, B A, A B, ...), each on a fresh
# database (an SQLite file in a new temporary directory; a PostgreSQL database created before the
# run and dropped after it), each side with its own BOOKSTORE_BIN and BENCH_OUT, run from its own
# tree. Each run's result table is read back and summarised per figure: the median of each side,
# candidate / baseline of the medians, and every run's value (orders: HTTP and raw orders/s and the
# HTTP / raw ratio per scenario; catalog: req/s and p99 per scenario; stockroom: the median wall
# time of each receipt and stocktake step, the webhook lag and the delivery rates).
#
# Environment:
#   ROUNDS             rounds per bench and backend (default 3)
#   BENCH_AB_CACHE     where baselines are kept (default ${XDG_CACHE_HOME:-~/.cache}/bookstore-ab)
#   BENCH_PG_URL       PostgreSQL server to create the bench databases on
#                      (default postgres://postgres@127.0.0.1:5432/postgres; needs CREATEDB)
#   BENCH_SECONDS, BENCH_BOOKS, BENCH_CONNECTIONS, ...  passed on to both sides' benches (see
#                      scripts/bench-orders.sh, bench-catalog.sh, bench-stockroom.sh);
#                      BOOKSTORE_DB_POOL_SIZE, BOOKSTORE_WORKERS, ... to both sides' servers
#   CARGO_TARGET_DIR   the candidate's target directory, as usual (default target/)
# The summary is printed and written to bench-out/ab-<timestamp>.md, followed by every run's own
# table; a failed run's output is kept in bench-out/ab-<timestamp>-<run>.log. Exit status 1 if a
# run failed (its figures, if it printed any, still count), 2 on bad arguments.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

usage() {
    echo "usage: $0 BASE_REV [orders|catalog|stockroom|all] [sqlite|postgres|all]" >&2
    exit 2
}

if [ $# -lt 1 ] || [ $# -gt 3 ]; then usage; fi
base_rev=$1
case "${2:-all}" in
    orders | catalog | stockroom) benches=("${2}_load") ;;
    all) benches=(orders_load catalog_load stockroom_load) ;;
    *) usage ;;
esac
case "${3:-all}" in
    sqlite | postgres) backends=("$3") ;;
    all) backends=(sqlite postgres) ;;
    *) usage ;;
esac
rounds="${ROUNDS:-3}"
case "$rounds" in
    '' | *[!0-9]*) usage ;;
esac
rounds=$((10#$rounds))
[ "$rounds" -ge 1 ] || usage
base_sha=$(git rev-parse --verify --quiet "$base_rev^{commit}") || {
    echo "$0: $base_rev is not a commit of this repository" >&2
    exit 2
}

PG_URL="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
# The PID keeps two runs of this script apart; the stockroom bench adds _<scenario> to it.
PG_DB="bookstore_ab_$$"
cache="${BENCH_AB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bookstore-ab}/$base_sha"
stamp=$(date +%Y%m%d-%H%M%S)
mkdir -p bench-out
summary="$root/bench-out/ab-$stamp.md"

workdir=$(mktemp -d)
uses_pg=0
[[ " ${backends[*]} " == *" postgres "* ]] && uses_pg=1

# drop_pg_databases: drops this run's bench database and the stockroom bench's copies of it.
drop_pg_databases() {
    local name
    for name in $(psql "$PG_URL" -qAtX -c \
        "SELECT datname FROM pg_database WHERE datname LIKE '${PG_DB}%'"); do
        psql "$PG_URL" -qX -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null
    done
}

cleanup() {
    rm -rf "$workdir"
    if [ "$uses_pg" -eq 1 ]; then
        drop_pg_databases 2>/dev/null || true
    fi
}
trap cleanup EXIT

# artifact KIND NAME: reads cargo's JSON messages and prints the executable of target NAME of
# kind KIND (bin, bench); fails if cargo reported none.
artifact() {
    python3 -c '
import json, sys
kind, name = sys.argv[1], sys.argv[2]
found = None
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    target = msg.get("target") or {}
    if (msg.get("reason") == "compiler-artifact" and target.get("name") == name
            and kind in target.get("kind", []) and msg.get("executable")):
        found = msg["executable"]
if not found:
    sys.exit("cargo reported no %s executable named %s" % (kind, name))
print(found)
' "$1" "$2"
}

# build SIDE TREE [TARGET_DIR]: builds the server and the benches in TREE (niced; in TARGET_DIR if
# given), and copies the executables to $workdir/SIDE/.
build() {
    local side=$1 tree=$2 target_dir=${3:-} out bench exe
    out="$workdir/$side"
    mkdir -p "$out"
    echo "==> $side: cargo build --release, in $tree"
    exe=$(cargo_json "$tree" "$target_dir" build --release | artifact bin bookstore)
    cp "$exe" "$out/bookstore"
    for bench in "${benches[@]}"; do
        echo "==> $side: cargo bench --bench $bench --no-run"
        exe=$(cargo_json "$tree" "$target_dir" bench --bench "$bench" --no-run |
            artifact bench "$bench")
        cp "$exe" "$out/$bench"
    done
}

# cargo_json TREE TARGET_DIR ARGS...: niced cargo ARGS in TREE, its messages as JSON on standard
# output (compiler errors and progress still go to standard error, as text).
cargo_json() {
    local tree=$1 target_dir=$2
    shift 2
    (
        cd "$tree"
        if [ -n "$target_dir" ]; then export CARGO_TARGET_DIR="$target_dir"; fi
        nice -n 10 cargo "$@" --message-format=json-render-diagnostics
    )
}

# The baseline's worktree: made once per commit, checked to be untouched when reused.
base_tree="$cache/src"
if [ -e "$base_tree/.git" ]; then
    if [ "$(git -C "$base_tree" rev-parse HEAD)" != "$base_sha" ] ||
        [ -n "$(git -C "$base_tree" status --porcelain)" ]; then
        echo "$0: $base_tree is no longer a clean checkout of $base_sha;" \
            "remove it (git worktree remove --force $base_tree) and run again" >&2
        exit 1
    fi
else
    mkdir -p "$cache"
    echo "==> baseline: git worktree add --detach $base_tree $base_sha"
    # -f: the path may still be registered from a cache that was deleted.
    git worktree add -f --detach "$base_tree" "$base_sha"
fi

build baseline "$base_tree" "$cache/target"
build candidate "$root"

base_name="$(git log -1 --format='%h %s' "$base_sha")"
cand_name="$(git log -1 --format='%h %s' HEAD)"
[ -z "$(git status --porcelain --untracked-files=no)" ] || cand_name="$cand_name (+ uncommitted changes)"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# run_one SIDE BENCH BACKEND ROUND: one bench run on a fresh database; its table goes to
# $workdir/out/BENCH.BACKEND.SIDE.ROUND.md. Fails if the bench did.
run_one() {
    local side=$1 bench=$2 backend=$3 round=$4 tree url dbdir log status=0
    local tag="$bench.$backend.$side.$round"
    if [ "$side" = baseline ]; then tree=$base_tree; else tree=$root; fi
    echo
    echo "==> round $round/$rounds: $side, $bench on $backend"
    dbdir="$workdir/db-$tag"
    mkdir -p "$dbdir" || return
    if [ "$backend" = sqlite ]; then
        url="$dbdir/bench.db"
    else
        url="${PG_URL%/*}/$PG_DB"
        # `|| return`: set -e does not apply here (run_one is called where its status is tested).
        drop_pg_databases || return
        psql "$PG_URL" -qX -v ON_ERROR_STOP=1 -c "CREATE DATABASE $PG_DB" >/dev/null || return
    fi
    log="$workdir/log/$tag.log"
    (cd "$tree" && BENCH_DATABASE_URL="$url" BOOKSTORE_BIN="$workdir/$side/bookstore" \
        BENCH_OUT="$workdir/out/$tag.md" "$workdir/$side/$bench") 2>&1 | tee "$log" ||
        status=$?
    rm -rf "$dbdir"
    [ "$backend" = sqlite ] || drop_pg_databases || return
    if [ "$status" -ne 0 ]; then
        cp "$log" "$root/bench-out/ab-$stamp-$tag.log"
        echo "==> $tag FAILED (status $status); output kept in bench-out/ab-$stamp-$tag.log"
    fi
    return "$status"
}

mkdir -p "$workdir/out" "$workdir/log"
failed=()
for bench in "${benches[@]}"; do
    for backend in "${backends[@]}"; do
        for ((round = 1; round <= rounds; round++)); do
            if ((round % 2)); then order=(baseline candidate); else order=(candidate baseline); fi
            for side in "${order[@]}"; do
                run_one "$side" "$bench" "$backend" "$round" ||
                    failed+=("$bench.$backend.$side.$round")
            done
        done
    done
done

# The summary: the figures of every run's table, by bench, backend and figure.
# Set knobs of the benches and servers (those this script sets for each run, and secrets, left out).
# shellcheck disable=SC2016 # the backquotes are markdown's
settings=$(env | grep -E '^(BENCH|BOOKSTORE)_' |
    grep -v -E '^(BENCH_(PG_URL|AB_CACHE|OUT|DATABASE_URL)|BOOKSTORE_BIN)=|SECRET|PASSWORD|TOKEN|KEY' |
    sort | sed 's/^/`/; s/$/`/' | paste -sd ' ' || true)
python3 - "$workdir/out" >"$summary" \
    "$base_name" "$cand_name" "$rounds" "${settings:-defaults}" "$(nproc)" \
    "$load_before" "$(cut -d' ' -f1-3 /proc/loadavg)" "${failed[*]:-}" <<'PY'
"""Reads the runs' result tables (markdown, one file per run named
BENCH.BACKEND.SIDE.ROUND.md) and prints the A/B summary, then the runs' own tables."""
import os
import re
import statistics
import sys

out_dir, base_name, cand_name, rounds, settings, cores, load_before, load_after, failed = sys.argv[1:]


def tables(text):
    """The markdown tables of a text: a list of (header cells, rows of cells)."""
    found, lines = [], text.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.startswith("|") and re.match(r"^\|\s*-", lines[i + 1]):
            rows, j = [], i + 2
            while j < len(lines) and lines[j].startswith("|"):
                rows.append(cells(lines[j]))
                j += 1
            found.append((cells(line), rows))
    return found


def cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def number(text):
    """The first number of a cell (bold marks and thousands separators ignored), or None."""
    m = re.search(r"-?\d+(?:\.\d+)?", text.replace("**", "").replace(",", ""))
    return float(m.group()) if m else None


def numbers(text):
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", text.replace("**", ""))]


def plain(label):
    """A label without bold marks, counts in parentheses, or surplus spaces."""
    label = label.replace("**", "")
    label = re.sub(r"\s*\([^)]*\d[^)]*\)", "", label)
    return re.sub(r"\s+", " ", label).strip()


# Each parser yields (figure, better, value) from one run's text.
def orders(text):
    for head, rows in tables(text):
        if "HTTP orders/s" not in head or "raw tx/s" not in head:
            continue
        col = {name: i for i, name in enumerate(head)}
        for row in rows:
            scenario = row[col["scenario"]]
            http = number(row[col["HTTP orders/s"]])
            raw = number(row[col["raw tx/s"]])
            if http is not None:
                yield f"{scenario}: HTTP orders/s", "higher", http
            if raw is not None:
                yield f"{scenario}: raw orders/s", "higher", raw
            if http is not None and raw:
                yield f"{scenario}: HTTP / raw", "higher", http / raw


def catalog(text):
    for head, rows in tables(text):
        if "req/s" not in head:
            continue
        col = {name: i for i, name in enumerate(head)}
        for row in rows:
            scenario = f"`{row[col['scenario']]}`"
            for name, better in (("req/s", "higher"), ("p99 ms", "lower")):
                value = number(row[col[name]]) if name in col else None
                if value is not None:
                    yield f"{scenario}: {name}", better, value


def stockroom(text):
    for head, rows in tables(text):
        if "median ms" in head:
            median, mode = head.index("median ms"), ""
            for row in rows:
                label = plain(row[0])
                m = re.match(r"stocktake of \d+ lines, (.*?):", label)
                if m:
                    mode = m.group(1)
                    label = f"stocktake, {mode}: {label[m.end():].strip()}"
                elif label.startswith("…"):
                    label = f"stocktake, {mode}:{label[1:]}"
                value = number(row[median]) if median < len(row) else None
                if value is not None:
                    yield f"{label} (median ms)", "lower", value
        elif head[:2] == ["webhooks", "figure"]:
            for row in rows:
                label, values = row[0], numbers(row[1])
                if "delivery lag" in label and len(values) >= 2:
                    yield "webhook lag p50 ms", "lower", values[0]
                    yield "webhook lag p99 ms", "lower", values[1]
                elif label.startswith("burst:"):
                    m = re.search(r"\(([\d.]+)/s", row[1])
                    if m:
                        yield "burst: orders/s", "higher", float(m.group(1))
                elif "throughput" in label and len(values) >= 4:
                    names = ("during the burst", "draining", "overall", "best 1 s")
                    for name, value in zip(names, values):
                        yield f"events delivered/s, {name}", "higher", value


PARSERS = {"orders_load": orders, "catalog_load": catalog, "stockroom_load": stockroom}

figures = {}  # (bench, backend, figure) -> {"better": ..., "baseline": [...], "candidate": [...]}
runs = []
for name in os.listdir(out_dir):
    bench, backend, side, rnd, _ = name.split(".")
    with open(os.path.join(out_dir, name), encoding="utf-8") as f:
        runs.append((bench, backend, side, rnd, f.read()))
runs.sort(key=lambda r: (r[0], r[1], int(r[3]), r[2]))
for bench, backend, side, rnd, text in runs:
    for figure, better, value in PARSERS[bench](text):
        entry = figures.setdefault((bench, backend, figure), {"better": better})
        entry.setdefault(side, []).append(value)


def fmt(x):
    if x is None:
        return "–"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3f}" if abs(x) < 1 else f"{x:.2f}"


lines = [
    f"### A/B — candidate `{cand_name}` against baseline `{base_name}`",
    "",
    f"{rounds} round(s) per bench and backend, alternating (A B, B A, ...), each run on a fresh "
    f"database. Settings: {settings}. Machine: {cores} cores, load average (1, 5, 15 min) "
    f"{load_before} before the runs, {load_after} after.",
    "",
    "| bench | backend | figure | better | baseline median | candidate median | "
    "candidate / baseline | baseline runs | candidate runs |",
    "|---|---|---|---|---:|---:|---:|---|---|",
]
for (bench, backend, figure), entry in figures.items():
    base, cand = entry.get("baseline", []), entry.get("candidate", [])
    bm = statistics.median(base) if base else None
    cm = statistics.median(cand) if cand else None
    ratio = f"{cm / bm:.3f}" if bm and cm is not None else "–"
    lines.append(
        f"| {bench.removesuffix('_load')} | {backend} | {figure} | {entry['better']} | {fmt(bm)} "
        f"| {fmt(cm)} | {ratio} | {', '.join(map(fmt, base)) or '–'} "
        f"| {', '.join(map(fmt, cand)) or '–'} |"
    )
if not figures:
    lines.append("| (no figures: no run wrote a result table) | | | | | | | | |")
lines += [
    "",
    "Medians over the runs; candidate / baseline is the ratio of the medians (above 1 is better "
    "where higher is better, below 1 where lower is). For orders, HTTP / raw is each run's HTTP "
    "orders/s over its raw orders/s, and the medians are of those per-run ratios.",
]
if failed:
    lines += ["", f"FAILED runs (bench.backend.side.round): {failed}"]
print("\n".join(lines))
print("\n## The runs' own tables\n")
for bench, backend, side, rnd, text in runs:
    print(f"#### {bench}, {backend}, {side}, round {rnd}\n\n{text}")
PY

echo
echo "==> A/B summary (also in ${summary#"$root"/})"
sed '/^## The runs/,$d' "$summary"
[ "${#failed[@]}" -eq 0 ]
