"""Waiting that a stop interrupts: a start-up retry must not outlive SIGTERM.

Every start-up step that may wait on something away (a broker that is down or frozen,
a ClickHouse server that does not answer) runs through ``unless_stopped``, so a stop
asked for meanwhile ends the wait at once instead of after the step's own timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")

# How long a cancelled start-up step may take to clean up before we stop waiting for it.
CANCEL_GRACE_S = 1.0


class Stopped(BaseException):
    """A stop was asked for while a start-up step waited. A BaseException, like
    cancellation: ``except Exception`` in a retry loop must not swallow it."""


async def unless_stopped(aw: Awaitable[T], stop: asyncio.Event) -> T:
    """``aw``'s result, or ``Stopped`` (with ``aw`` cancelled) as soon as ``stop`` is set."""
    if stop.is_set():
        if asyncio.iscoroutine(aw):
            aw.close()
        raise Stopped
    task = asyncio.ensure_future(aw)
    waiter = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(BaseException):
        await asyncio.wait_for(asyncio.shield(task), CANCEL_GRACE_S)
    raise Stopped


async def sleep_unless_stopped(seconds: float, stop: asyncio.Event) -> None:
    """Sleep, but raise ``Stopped`` the moment ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    if stop.is_set():
        raise Stopped


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background loop and wait until it has ended (its ``finally`` ran); None: nothing."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
