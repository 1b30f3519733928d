"""The input and tenancy tests again on PostgreSQL, which is stricter than SQLite (lengths, NULs, types).

An input SQLite stores happily can be a 500 on PostgreSQL; the distributed mode runs there.
"""

from __future__ import annotations

import pytest

from .test_hostile import test_hostile_input_is_a_4xx_with_a_message as hostile_input
from .test_hostile import test_injection_strings_are_stored_verbatim_and_harm_nothing as injection
from .test_resources import BAD_INPUT
from .test_tenancy import test_every_documented_path_with_another_users_id_is_a_404 as every_path
from .test_tenancy import test_pages_follow_the_before_id_cursor as pages

pytestmark = pytest.mark.postgres


async def test_hostile_and_bad_input_is_a_4xx_on_postgresql(pg_api) -> None:  # type: ignore[no-untyped-def]
    await hostile_input(pg_api)
    await injection(pg_api)
    c = await pg_api.user("pg-bad@example.com")
    for method, url, body, status, field in BAD_INPUT:
        r = await getattr(c, method)(url, **({"json": body} if body is not None else {}))
        assert r.status_code == status and field in r.text, (method, url, r.text)


async def test_tenancy_and_paging_on_postgresql(pg_api) -> None:  # type: ignore[no-untyped-def]
    await every_path(pg_api)
    await pages(pg_api)
