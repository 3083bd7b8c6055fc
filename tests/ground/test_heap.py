"""The C heap gives freed memory back when trimmed (ground/heap.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ground.heap import Heap

# In a fresh interpreter: fill the heap with 64 KiB blocks (below glibc's mmap threshold),
# free all but the newest (so the heap's top cannot shrink by itself), then trim.
_SCRIPT = """
import ctypes, ctypes.util
from pathlib import Path
from ground.heap import Heap

def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024

import sys
heap = Heap()
if sys.argv[1] == "fixed":
    assert heap.fix_mmap_threshold(64)
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
blocks = []
for _ in range(3000):
    p = libc.malloc(64 * 1024)
    ctypes.memset(p, 1, 64 * 1024)
    blocks.append(p)
for p in blocks[:-1]:
    libc.free(p)
before = rss()
if sys.argv[1] == "trim":
    assert heap.trim()
print(before, rss())
"""


def test_arenas_can_be_capped_and_trim_is_safe_to_call() -> None:
    heap = Heap()
    if not heap.available:
        pytest.skip("not glibc: no mallopt/malloc_trim here")
    assert heap.limit_arenas(2)
    assert not heap.limit_arenas(0)  # 0 keeps glibc's default: nothing set
    heap.trim()


def _held_then_left(how: str) -> tuple[int, int]:
    """Anonymous RSS with the freed blocks still held by malloc, and after ``how``."""
    out = subprocess.run([sys.executable, "-c", _SCRIPT, how], capture_output=True, text=True, timeout=60, check=True)
    before, after = (int(x) for x in out.stdout.split())
    return before, after


FREED = 2999 * 64 * 1024


def test_trim_returns_freed_heap_pages_to_the_os() -> None:
    if not Heap().available:
        pytest.skip("not glibc: no malloc_trim here")
    before, after = _held_then_left("none")
    assert before - after < FREED * 0.2  # untrimmed, glibc keeps them: what the soak saw
    before, after = _held_then_left("trim")
    assert before - after > FREED * 0.8, (before, after)  # ~190 MiB held, then given back


def test_a_fixed_mmap_threshold_gives_large_blocks_back_when_freed() -> None:
    if not Heap().available:
        pytest.skip("not glibc: no mallopt here")
    before, _ = _held_then_left("fixed")
    baseline, _ = _held_then_left("none")
    assert baseline - before > FREED * 0.8, (baseline, before)  # never held: unmapped as freed


_USAGE_SCRIPT = """
import ctypes, ctypes.util
from ground.heap import Heap

heap = Heap()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
start = heap.usage()
blocks = [libc.malloc(64 * 1024) for _ in range(3000)]
held = heap.usage()
for p in blocks[:-1]:
    libc.free(p)
freed = heap.usage()
print(held["in_use"] - start["in_use"], freed["free"] - held["free"], freed["in_use"] - start["in_use"])
"""


def test_usage_tells_memory_in_use_from_memory_held_free() -> None:
    """What a soak's RSS swing is made of (livesales_malloc_bytes): blocks in use count
    as in_use, and the same blocks freed but kept by glibc move to free."""
    if not Heap().available:
        pytest.skip("not glibc: no mallinfo2 here")
    out = subprocess.run([sys.executable, "-c", _USAGE_SCRIPT], capture_output=True, text=True, timeout=60, check=True)
    grew, freed, left = (int(x) for x in out.stdout.split())
    assert grew > 3000 * 64 * 1024 * 0.95, grew
    assert freed > FREED * 0.95, freed
    assert left < 2 * 1024 * 1024, left  # only the newest block (and the interpreter's noise) still in use


_DEFAULT_THRESHOLD_SCRIPT = """
import ctypes, ctypes.util
from ground.heap import Heap
from ground.settings import Tuning

heap = Heap()
assert heap.fix_mmap_threshold(Tuning().malloc_mmap_threshold_kb)
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
start = heap.usage()["mmapped"]
batch_sized = libc.malloc(16 << 20)
after_batch = heap.usage()["mmapped"]
too_big = libc.malloc(40 << 20)
print(after_batch - start, heap.usage()["mmapped"] - after_batch)
"""


def test_the_default_mmap_threshold_keeps_a_batchs_blocks_in_the_heap() -> None:
    """A fetch response, a joined insert block or a produce request (a few to ~30 MiB)
    comes from the heap, whose pages the next batch reuses; mapped, each was faulted in
    anew (the service's CPU per poisoned message 24-25 -> 20-22 µs, docs/BENCHMARKS.md).
    Blocks over glibc's ceiling (32 MiB) are still mapped, and unmapped when freed."""
    if not Heap().available or Heap().usage() is None:
        pytest.skip("not glibc 2.33+: no mallopt/mallinfo2 here")
    out = subprocess.run([sys.executable, "-c", _DEFAULT_THRESHOLD_SCRIPT], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()  # fmt: skip
    batch_mapped, big_mapped = (int(x) for x in out)
    assert batch_mapped < 1 << 20, batch_mapped  # 16 MiB from the heap, not mapped
    assert big_mapped >= 40 << 20, big_mapped


_CHDB_SCRIPT = """
import os, sys, tempfile
import clickhouse_connect
from ground.heap import Heap

set_here = Heap.configure_chdb_allocator(1234)
client = clickhouse_connect.get_client(dsn=f"chdb://{tempfile.mkdtemp()}/ch")
again = Heap.configure_chdb_allocator(99)  # chDB loaded: too late, and says so
stats = client.query("SELECT * FROM system.jemalloc_stats").result_rows[0][0]
opts = [line.strip() for line in stats.splitlines() if line.strip().startswith("opt.dirty_decay_ms:")]
print(set_here, again, "|".join(opts))
"""


@pytest.mark.parametrize("operator_conf", [None, "dirty_decay_ms:777"])
def test_chdbs_allocator_takes_our_settings_unless_the_operator_gave_some(operator_conf: str | None) -> None:
    """chDB's own jemalloc reads JE_MALLOC_CONF once, when chDB loads: set before that,
    the decay is ours; an operator's JE_MALLOC_CONF wins."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "JE_MALLOC_CONF"}
    if operator_conf:
        env["JE_MALLOC_CONF"] = operator_conf
    out = subprocess.run([sys.executable, "-c", _CHDB_SCRIPT], capture_output=True, text=True, timeout=120,
                         check=True, env=env).stdout.split()  # fmt: skip
    set_here, again, opts = out[0], out[1], " ".join(out[2:])
    assert again == "False"
    if operator_conf:
        assert set_here == "False" and "opt.dirty_decay_ms: 777" in opts
    else:
        assert set_here == "True" and "opt.dirty_decay_ms: 1234" in opts, opts


_RUNTIME_SCRIPT = """
import asyncio, os, sys, tempfile
from livesales.runtime import Runtime
from ground.settings import Settings

async def main() -> None:
    runtime = Runtime(Settings(clickhouse_dsn=f"chdb://{tempfile.mkdtemp()}/ch"))
    await runtime.start_storage()
    stats = await runtime.store.query("SELECT * FROM system.jemalloc_stats")
    text = str(next(iter(stats[0].values())))
    print("|".join(line.strip() for line in text.splitlines() if line.strip().startswith("opt.dirty_decay_ms:")))
    await runtime.store.close()

asyncio.run(main())
"""


def test_a_runtimes_tuning_reaches_chdbs_allocator() -> None:
    """Tuning.chdb_dirty_decay_ms (how long chDB keeps freed pages for the next insert: the
    rate against the RSS's swing) must reach chDB's allocator, which reads it only once."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("JE_MALLOC_CONF", "LIVESALES_"))}
    env["LIVESALES_TUNING"] = '{"chdb_dirty_decay_ms": 1234}'  # chDB's own is 5000, as is ours
    out = subprocess.run([sys.executable, "-c", _RUNTIME_SCRIPT], capture_output=True, text=True, timeout=120,
                         check=True, env=env).stdout  # fmt: skip
    assert "opt.dirty_decay_ms: 1234 (arenas.dirty_decay_ms: 1234)" in out, out
