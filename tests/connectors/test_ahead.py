"""``connectors.reconcile.ahead``: pages in order, the next one fetched while the caller works
on the current one, a failure surfacing where its page would, nothing left running."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from connectors.platform import PlatformUnavailable
from connectors.reconcile import ahead


class Pages:
    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n, self.fail_at = n, fail_at
        self.requested: list[int] = []
        self.closed = False

    async def __call__(self) -> AsyncIterator[int]:
        try:
            for i in range(self.n):
                self.requested.append(i)
                await asyncio.sleep(0)
                if i == self.fail_at:
                    raise PlatformUnavailable("503")
                yield i
        finally:
            self.closed = True


async def test_pages_in_order_with_the_next_one_already_asked_for() -> None:
    pages = Pages(4)
    got = []
    async for page in ahead(pages()):
        await asyncio.sleep(0.01)  # the caller's work: the next page is fetched meanwhile
        assert pages.requested[-1] == min(page + 1, 3)
        got.append(page)
    assert got == [0, 1, 2, 3] and pages.closed


async def test_a_failed_page_raises_where_it_would_have_come() -> None:
    pages = Pages(5, fail_at=2)
    got = []
    with pytest.raises(PlatformUnavailable):
        async for page in ahead(pages()):
            got.append(page)
    assert got == [0, 1]


async def test_stopping_early_leaves_nothing_running() -> None:
    pages = Pages(10)
    async with asyncio.timeout(5):
        gen = ahead(pages())
        async for page in gen:
            if page == 1:
                break
        await gen.aclose()
    assert pages.closed and pages.requested[:2] == [0, 1] and len(pages.requested) <= 3  # one ahead at most
