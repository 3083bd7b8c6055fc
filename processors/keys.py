"""Stable 64-bit hashes of dedupe keys, equal to ClickHouse's ``xxh3(...)``.

Python's ``hash()`` changes between processes, and these hashes are computed by
ClickHouse on insert (schemas.ddl) and reloaded into the Bloom filters at start-up, so
they must be the same everywhere: XXH3-64 of the key parts joined by U+001F. A hash only
ever says "maybe seen": equality is confirmed on the full key.
"""

from __future__ import annotations

from xxhash import xxh3_64_intdigest

SEP = "\x1f"  # unit separator: cannot occur in identifiers (control chars are rejected)


def key_hash(*parts: str) -> int:
    return xxh3_64_intdigest(SEP.join(parts).encode())
