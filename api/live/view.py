"""A live view's parts: its key, its viewers' one-frame mailboxes, and its watcher.

The hub (api.live.hub) decides when a watcher is computed; these hold what a view shows
and hand it to its viewers. Split from the hub so each file reads on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson

from api.auth import Scope
from api.live.payloads import Marker
from api.params import TimeParams
from processors.store import StorageError


class Lane(Protocol):
    """What a watcher asks of the hub that computes it (api.live.hub.LiveHub)."""

    def kick(self) -> None: ...
    def forget(self, watcher: Watcher) -> None: ...


@dataclass(frozen=True)
class ViewKey:
    """What makes two viewers' payloads identical: they share a watcher."""

    channel_id: str
    scope: Scope
    tz: str
    lo: datetime | None
    hi: datetime | None


class Viewer:
    """One open stream: a one-frame mailbox (the newest frame wins) and its peer's pulse."""

    def __init__(self, watcher: Watcher, token: str, alive: Callable[[], bool]) -> None:
        self.watcher = watcher
        self.token = token
        self.alive = alive
        self.closed = False
        self.left = False
        self._frame: bytes | None = None
        self._ready = asyncio.Event()

    def offer(self, frame: bytes) -> None:
        self._frame = frame  # an unsent older frame is replaced, never queued
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def next(self, timeout: float) -> bytes | None:
        """The newest frame not yet taken; ``b""`` when none came within ``timeout`` (time
        for a keepalive); None once the stream is to end."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):  # no task per call, unlike wait_for
                await self._ready.wait()
        self._ready.clear()
        if self.closed:
            return None
        frame, self._frame = self._frame, None
        return frame or b""


class Watcher:
    """One view: its viewers, its newest frame, and whether it is due for a computation.

    Watchers hold no task: the hub's one lane computes the due ones, in turns, those of
    one scope, tz and window together (api.live.payloads)."""

    def __init__(self, hub: Lane, key: ViewKey, tp: TimeParams) -> None:
        self.hub = hub
        self.key = key
        self.tp = tp
        self.viewers: set[Viewer] = set()
        self.frame: bytes | None = None
        self.marker: Marker | None = None  # read before the frame was computed: it shows at least that
        self.error: StorageError | None = None
        self.gone = False  # ended: nobody watches, the hub closed, or the channel is missing
        self.missing = False  # the channel does not exist (or no longer) for this scope
        self.started = asyncio.Event()  # the first computation ended, whatever it gave
        self.due_since: float | None = None  # woken and not computed since
        self.last = -math.inf  # when its last computation began
        # The summary of ``frame`` and when the computation that made it began (monotonic):
        # it shows every row stored, by any process, before then.
        self.summary: dict[str, Any] | None = None
        self.summary_from = -math.inf

    def wake(self) -> None:
        if self.due_since is None and not self.gone:
            self.due_since = time.monotonic()
            self.hub.kick()

    def show(self, payload: dict[str, Any] | None, marker: Marker | None, began: float) -> None:
        self.error = None
        self.marker = marker
        if payload is None:
            self.missing = True
            self.end()
            return
        self.summary, self.summary_from = payload["summary"], began
        frame = b"event: update\ndata: " + orjson.dumps(payload) + b"\n\n"
        if frame != self.frame:  # the same state twice is sent once
            self.frame = frame
            for viewer in self.viewers:
                viewer.offer(frame)
        self.started.set()

    def end(self) -> None:
        """Nothing more to show: end its streams (their handlers leave)."""
        self.gone = True
        self.due_since = None
        self.started.set()
        self.hub.forget(self)
        for viewer in self.viewers:
            viewer.close()
