"""Schemathesis hooks for scripts/fuzz.sh.

- Every webhook URL the fuzzer generates is replaced by a loopback one (FUZZ_WEBHOOK_URL), so the
  server never resolves or calls a host outside this machine.
- `problem_json_errors`: every 4xx/5xx answer is application/problem+json with the RFC 9457
  members `type`, `title` and `status` (equal to the HTTP status).
"""

import json
import os

import schemathesis

LOOPBACK_URL = os.environ.get("FUZZ_WEBHOOK_URL", "http://127.0.0.1:9/hook")


def _loopback(body):
    if isinstance(body, dict) and isinstance(body.get("url"), str):
        body["url"] = LOOPBACK_URL


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.operation.path.startswith("/api/v1/webhooks"):
        _loopback(case.body)
        _loopback(kwargs.get("json"))


@schemathesis.check
def problem_json_errors(ctx, response, case):
    """Error answers are problem+json (RFC 9457)."""
    if response.status_code < 400:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    if not content_type.startswith("application/problem+json"):
        raise AssertionError(
            f"{response.status_code} answered with Content-Type {content_type!r}, "
            "not application/problem+json"
        )
    try:
        body = json.loads(response.content)
    except ValueError as err:
        raise AssertionError(f"the problem body is not JSON: {err}") from None
    if not isinstance(body, dict):
        raise AssertionError("the problem body is not a JSON object")
    missing = [k for k in ("type", "title", "status") if k not in body]
    if missing:
        raise AssertionError(f"the problem body lacks {', '.join(missing)}")
    if body["status"] != response.status_code:
        raise AssertionError(
            f"the problem's status {body['status']} is not the HTTP status {response.status_code}"
        )
    return None
