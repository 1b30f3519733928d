"""Schemathesis: property-based fuzzing of /api/openapi.json over the authenticated API.

Every operation gets generated valid and invalid requests, sent over HTTP with a logged-in user's
Bearer token; no answer may be a 5xx, and every answer must match the documented status codes,
content types and schemas.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tradewind.web.openapi import openapi_document

from .server import ServerThread

PASSWORD = "correct horse battery staple"
GOOD = 'function decide(c, p) return "long" end'
SEEN: defaultdict[str, set[int]] = defaultdict(set)  # operation -> the status codes it answered
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[ServerThread, dict[str, str]]]:
    with ServerThread(Path(tmp_path_factory.mktemp("fuzz")), fake_exchanges=True) as srv:
        with httpx.Client(base_url=srv.url) as c:
            c.post(
                "/api/auth/register", json={"email": "fuzz@example.com", "password": PASSWORD}
            ).raise_for_status()
            token = c.post(
                "/api/auth/login", json={"email": "fuzz@example.com", "password": PASSWORD}
            ).json()["token"]
            headers = {"Authorization": f"Bearer {token}"}
            # Some objects for generated ids to hit, besides the many that will not exist.
            s = c.post("/api/strategies", json={"name": "seed", "code": GOOD}, headers=headers).json()
            t = c.post("/api/traders", json={"name": "paper", "exchange": "sim"}, headers=headers).json()
            c.post(
                "/api/assignments",
                json={"strategy_id": s["id"], "market_id": 1, "trader_id": t["id"]},
                headers=headers,
            ).raise_for_status()
        yield srv, headers
    reached(request.session)


# The document the app serves (built without a server); the requests go to the running server below.
# Logging out would end the session the rest of the run uses; test_auth.py covers it.
# A body over the size cap is refused before it is read (413): that too is a rejection.
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
            }
        }
    }
)
schema = schemathesis.openapi.from_dict(openapi_document(), config=CONFIG).exclude(path="/api/auth/logout")


@schema.parametrize()
# derandomize: the same cases every run, so the guard below (operations that answered 2xx) cannot flicker
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_generated_request_gets_a_5xx_or_breaks_the_schema(case, server) -> None:  # type: ignore[no-untyped-def]
    srv, headers = server
    response = case.call_and_validate(base_url=srv.url, headers=headers, checks=CHECKS)
    SEEN[f"{case.method} {case.path}"].add(response.status_code)


FUZZ = test_no_generated_request_gets_a_5xx_or_breaks_the_schema


def reached(session: pytest.Session) -> None:
    """Guards the fuzz run against passing vacuously (e.g. every request answered 401): checked when the
    server of the run stops, after its last case wherever the cases ran (also under pytest-xdist), and
    only when every operation was fuzzed in this process (not under -k)."""
    cases = [i for i in session.items if getattr(i, "originalname", "") == FUZZ.__name__]
    if len(SEEN) < len(cases):  # not every operation was fuzzed here (-k, or the cases went elsewhere)
        return
    succeeded = {op for op, codes in SEEN.items() if any(200 <= c < 300 for c in codes)}
    assert len(SEEN) >= 25 and len(succeeded) >= 20, (sorted(succeeded), dict(SEEN))
