"""The process's two heaps: glibc's (Python, numpy, aiokafka) and chDB's own jemalloc.

A soak at 5,000 events/s (docs/BENCHMARKS.md "Memory soak") showed the service's RSS
creeping by 1-2 MiB/min with nothing in Python or chDB's own accounting growing. glibc
keeps what it frees: a heap gives its free pages back only from its top, and it opens up
to 8 arenas per core for the threads that allocate. Fewer arenas, a fixed mmap threshold
and a periodic trim bound that slack by design rather than by luck. They are glibc's;
elsewhere (musl, macOS) they are skipped and say so.

chDB does not allocate from glibc at all: it brings a jemalloc of its own (its
``system.jemalloc_stats``), steered only by JE_MALLOC_CONF before it loads
(``configure_chdb_allocator``). ``usage`` and chDB's Jemalloc* figures together tell
which of the two an RSS swing belongs to.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
_M_ARENA_MAX = -8


class _Mallinfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (2.33+): every field a size_t, summed over all arenas."""

    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
    )]  # fmt: skip


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    if not hasattr(lib, "malloc_trim") or not hasattr(lib, "mallopt"):
        return None  # not glibc
    return lib


class Heap:
    """The process's C heap, as far as glibc lets it be steered; built once by the runtime."""

    def __init__(self) -> None:
        self._libc = _libc()
        if self._libc is not None and hasattr(self._libc, "mallinfo2"):
            self._libc.mallinfo2.restype = _Mallinfo2  # once, not at every scrape

    @property
    def available(self) -> bool:
        return self._libc is not None

    def limit_arenas(self, arenas: int) -> bool:
        """Cap glibc's malloc arenas (like MALLOC_ARENA_MAX). Takes effect for arenas not
        yet made, so call it before the threads that allocate start; 0 leaves glibc's
        default. True if the cap was set."""
        if arenas <= 0 or self._libc is None or "MALLOC_ARENA_MAX" in os.environ:  # glibc's own wins
            return False
        return bool(self._libc.mallopt(ctypes.c_int(_M_ARENA_MAX), ctypes.c_int(arenas)))

    def fix_mmap_threshold(self, kib: int) -> bool:
        """Serve blocks of ``kib`` KiB and more by mmap, always (like MALLOC_MMAP_THRESHOLD_).
        glibc otherwise raises the threshold to the largest block freed so far, up to 32 MiB,
        and lets the heap's free top grow to twice that before giving it back. Fixed, it
        slides no more. The runtime's default is glibc's ceiling, 32 MiB: a batch's big
        blocks (a fetch response, the joined insert block, a produce request of dead
        letters) come from the heap, whose pages the next batch reuses, and the periodic
        ``trim`` gives back what stays free. At 1 MiB (the default until 2026-12-05) each
        was mapped, faulted in and unmapped anew: ~15% of the service's CPU per message of
        a poison flood (docs/BENCHMARKS.md). 0 leaves glibc's sliding threshold. True if
        set."""
        if kib <= 0 or self._libc is None or "MALLOC_MMAP_THRESHOLD_" in os.environ:  # glibc's own wins
            return False
        return bool(self._libc.mallopt(ctypes.c_int(_M_MMAP_THRESHOLD), ctypes.c_int(kib * 1024)))

    def usage(self) -> dict[str, int] | None:
        """Bytes of the C heap by kind: ``in_use`` (allocated from the arenas), ``free``
        (freed but still held by glibc: what a trim may give back) and ``mmapped`` (blocks
        at or over the mmap threshold, unmapped when freed). RSS that none of these
        explains is Python's own arenas, thread stacks or mapped files: the split tells a
        soak's swings apart. None where glibc has no mallinfo2."""
        if self._libc is None or not hasattr(self._libc, "mallinfo2"):
            return None
        info = self._libc.mallinfo2()
        return {"in_use": info.uordblks, "free": info.fordblks, "mmapped": info.hblkhd}

    @staticmethod
    def configure_chdb_allocator(dirty_decay_ms: int) -> bool:
        """How long the jemalloc bundled in chDB keeps freed pages for reuse before they go
        back to the OS (jemalloc's ``dirty_decay_ms``; chDB's own: 5000). jemalloc reads
        JE_MALLOC_CONF once, when chDB loads, so call this before the first chDB client
        opens. The shorter, the less a finished merge's pages lift the RSS, and the more
        often an insert faults its buffers in again, zeroed: at 0 ~30-40% more CPU per
        inserted row; at 300 a backlog's inserts still ~10% slower than at 5000 (a 40,000-row
        insert every ~250 ms outlives most of its pages). The default, 5000 (chDB's own),
        is the fastest and keeps the soak within ±5% of its median, ~24 MiB above 300's
        (docs/BENCHMARKS.md "Memory soak"). An operator's own JE_MALLOC_CONF is left as
        is. True if set here (or already, by an earlier runtime in this process)."""
        conf = f"dirty_decay_ms:{dirty_decay_ms}"
        if os.environ.get("JE_MALLOC_CONF") == conf:
            return True
        if "JE_MALLOC_CONF" in os.environ:
            log.info("JE_MALLOC_CONF given (%s): chDB's allocator settings left to it", os.environ["JE_MALLOC_CONF"])
            return False
        if "chdb" in sys.modules:
            # Only where chDB was opened in-process before the runtime (tests, benchmarks).
            log.info("chDB already loaded: chdb_dirty_decay_ms cannot reach its allocator")
            return False
        os.environ["JE_MALLOC_CONF"] = conf
        return True

    def trim(self) -> bool:
        """Return free pages of every arena to the OS (not only the top of the main heap).
        Costs a walk of the free lists under each arena's lock: milliseconds, so callers
        run it off the event loop. True if memory was released."""
        if self._libc is None:
            return False
        return bool(self._libc.malloc_trim(ctypes.c_size_t(0)))
