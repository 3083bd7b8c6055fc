"""Stable 64-bit hashes of dedupe keys.

Python's ``hash()`` changes between processes, and the hashes are stored in ClickHouse
and reloaded into the Bloom filters at start-up, so they must be stable: BLAKE2b cut to
8 bytes. A hash only ever says "maybe seen": equality is confirmed on the full key.
"""

from __future__ import annotations

from hashlib import blake2b

_SEP = "\x1f"  # unit separator: cannot occur in identifiers (control chars are rejected)


def key_hash(*parts: str) -> int:
    return int.from_bytes(blake2b(_SEP.join(parts).encode(), digest_size=8).digest(), "little")
