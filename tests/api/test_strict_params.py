"""Times, offsets and limits only in the forms contract §6 names; anything else is a 400."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, make_mocked_request

from api.errors import ApiError
from api.params import int_param, time_params
from tests.api.conftest import auth

PATH = "/v1/channels/nh-live/summary"


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("tz=%2B08:00%0A", "tz"),  # trailing newline: re's "$" matches before it
        ("tz=%2B0800", "tz"),
        ("tz=%2B08:00:00", "tz"),
        ("from=0", "from"),  # Unix seconds
        ("from=1717200000", "from"),
        ("to=1717200000.5", "to"),
        ("from=2020-02-29", "from"),  # a bare date
        ("from=2020-02-29T10:00:00", "from"),  # no offset
        ("from=2020-02-29T10:00:00%2B08:00%0A", "from"),
        ("to=2020-02-29T10:00:00%2B08", "to"),
    ],
)
async def test_loose_times_are_refused(client: TestClient[Any, Any], query: str, param: str) -> None:
    resp = await client.get(f"{PATH}?{query}", headers=auth("all"))
    assert resp.status == 400
    body = await resp.json()
    assert body["error"]["code"] == "bad_request"
    assert body["error"]["message"].startswith(f"{param}: ")
    assert "\n" not in body["error"]["message"]


@pytest.mark.parametrize(
    "query",
    ["tz=%2B08:00", "tz=-05:30", "from=2020-02-29T10:00:00%2B08:00", "from=2020-02-29T02:00:00Z&to=2020-03-01T00:00:00.5Z",
     "from=2020-02-29T10:00:00+08:00"],  # an unencoded '+' arrives as a space and is put back
)
async def test_rfc3339_with_offset_is_accepted(client: TestClient[Any, Any], query: str) -> None:
    resp = await client.get(f"{PATH}?{query}", headers=auth("all"))
    assert resp.status == 200, await resp.text()


def test_tz_is_echoed_exactly() -> None:
    tp = time_params(make_mocked_request("GET", "/x?tz=-05:30"))
    assert tp.tz == "-05:30" and tp.offset_seconds == -(5 * 3600 + 30 * 60)


@pytest.mark.parametrize("raw", ["-1", "+5", " 5", "5 ", "1_000", "0x10", "1e3", "５", "5\n", "", "1001"])
def test_int_param_takes_plain_decimals_only(raw: str) -> None:
    from urllib.parse import quote

    request = make_mocked_request("GET", f"/x?limit={quote(raw)}")
    with pytest.raises(ApiError) as info:
        int_param(request, "limit", 100, 1, 1000)
    assert info.value.status == 400
    assert info.value.message == "limit: expected a decimal integer from 1 to 1000"


def test_int_param_reads_decimals_and_defaults() -> None:
    assert int_param(make_mocked_request("GET", "/x?limit=250"), "limit", 100, 1, 1000) == 250
    assert int_param(make_mocked_request("GET", "/x"), "limit", 100, 1, 1000) == 100
