#!/usr/bin/env bash
# Fuzzes the API against its own OpenAPI document with schemathesis (pinned below).
#
# Starts the debug server on a fresh SQLite file in a temporary folder (loopback only), creates an
# admin with `bookstore create-admin`, logs in, and runs every operation of the document twice:
# with the admin's bearer token and without one. Fails on any 5xx, any status, header, content
# type or body that the document does not describe, and any error answer that is not
# application/problem+json (the `problem_json_errors` check in scripts/fuzz_hooks.py).
#
# Usage: scripts/fuzz.sh            (from anywhere; builds the binary if needed)
# Settings (environment):
#   FUZZ_EXAMPLES   examples per operation and phase (default 20)
#   FUZZ_SEED       hypothesis seed (default: a fixed one, so CI runs are reproducible;
#                   `random` picks a new one each run)
#   FUZZ_VENV       where schemathesis is installed (default ~/.cache/bookstore-fuzz/venv)
#   FUZZ_REPORT     folder for the JUnit reports and the server log (default: a temporary one)
#   FUZZ_BIN        the server binary to fuzz (default: `cargo build` and target/debug/bookstore)
#   CARGO_TARGET_DIR  as for cargo
set -Eeuo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

SCHEMATHESIS_VERSION=4.32.5
EXAMPLES="${FUZZ_EXAMPLES:-20}"
SEED="${FUZZ_SEED:-20261125}"
VENV="${FUZZ_VENV:-$HOME/.cache/bookstore-fuzz/venv}"
TARGET="${CARGO_TARGET_DIR:-target}"

work=$(mktemp -d)
REPORT="${FUZZ_REPORT:-$work/report}"
mkdir -p "$REPORT"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# --- schemathesis, pinned, in its own virtualenv --------------------------------------------
if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "version ${SCHEMATHESIS_VERSION}\$"; then
    echo "installing schemathesis ${SCHEMATHESIS_VERSION} into ${VENV}"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==${SCHEMATHESIS_VERSION}"
fi

# --- the server, on a fresh database ---------------------------------------------------------
if [ -n "${FUZZ_BIN:-}" ]; then
    BIN="$FUZZ_BIN"
else
    cargo build --quiet
    BIN="$TARGET/debug/bookstore"
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:${port}"
export DATABASE_URL="sqlite://$work/fuzz.db"
export BOOKSTORE_BIND="127.0.0.1:${port}"
export BOOKSTORE_JWT_SECRET="fuzz-secret-fuzz-secret-fuzz-secret-0123"
# Long enough for the whole run; the fuzzer must not meet expired tokens.
export BOOKSTORE_ACCESS_TOKEN_TTL_SECS=3600
# Webhook URLs are rewritten to this loopback address by the hooks (nothing listens on port 9,
# the discard port), so the server must accept a private address.
export BOOKSTORE_WEBHOOK_ALLOW_PRIVATE=true
export FUZZ_WEBHOOK_URL="http://127.0.0.1:9/hook"
# Wrong passwords from the fuzzer would otherwise lock the login out (429 is documented, but it
# would hide the rest of the login operation).
export BOOKSTORE_LOGIN_MAX_FAILURES=1000
export BOOKSTORE_LOGIN_MAX_FAILURES_PER_IP=100000
export BOOKSTORE_LOGIN_MAX_FAILURES_PER_EMAIL=1000000
export RUST_LOG="${RUST_LOG:-warn}"

admin_email="fuzz-admin@example.com"
admin_password="fuzz-admin-password-1"
"$BIN" migrate >/dev/null
printf '%s\n' "$admin_password" | "$BIN" create-admin --email "$admin_email" >/dev/null

"$BIN" serve >"$REPORT/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
    if curl -fsS "$base/healthz" >/dev/null 2>&1; then
        break
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "the server exited; its log:" >&2
        cat "$REPORT/server.log" >&2
        exit 1
    fi
    sleep 0.1
done

token=$(curl -fsS -X POST "$base/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"email\": \"${admin_email}\", \"password\": \"${admin_password}\"}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')

# --- the runs ---------------------------------------------------------------------------------
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,problem_json_errors
seed_args=()
if [ "$SEED" != "random" ]; then
    seed_args=(--seed "$SEED")
fi

# schemathesis signs up and logs in by itself when it finds a register operation; the run
# without a token must stay anonymous.
cat >"$work/anonymous.toml" <<'TOML'
[auth]
auto-signup = false
TOML

run() {
    local name="$1"
    shift
    echo
    echo "==> schemathesis, ${name}: every operation, ${EXAMPLES} examples each"
    SCHEMATHESIS_HOOKS=fuzz_hooks PYTHONPATH="$PWD/scripts" "$VENV/bin/st" --config-file "$work/anonymous.toml" run \
        "$base/api/v1/openapi.json" \
        --url "$base" \
        --phases examples,coverage,fuzzing \
        --checks "$checks" \
        --max-examples "$EXAMPLES" \
        "${seed_args[@]}" \
        --workers 2 \
        --request-timeout 10 \
        --suppress-health-check all \
        --no-color \
        --report junit --report-junit-path "$REPORT/${name}.xml" \
        "$@"
}

started=$(date +%s)
status=0
run with-token -H "Authorization: Bearer ${token}" || status=$?
run without-token || status=$?
echo
echo "fuzzing took $(($(date +%s) - started))s; reports in ${REPORT}"
# actix logs requests it cannot parse (the fuzzer's invalid header bytes) at ERROR level: those
# are the client's faults, answered 400; anything the service itself logs at ERROR is a finding.
if grep -E 'ERROR|panicked' "$REPORT/server.log" | grep -qv 'actix_http::h1::dispatcher'; then
    echo "the server logged errors:" >&2
    grep -E 'ERROR|panicked' "$REPORT/server.log" | grep -v 'actix_http::h1::dispatcher' | head -20 >&2
    status=1
fi
if [ -z "${FUZZ_REPORT:-}" ] && [ "$status" -ne 0 ]; then
    # Keep the evidence of a failed run.
    kept=$(mktemp -d)
    cp -r "$REPORT/." "$kept/"
    echo "reports kept in ${kept}" >&2
fi
exit "$status"
