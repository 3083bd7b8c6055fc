"""The write fence: no insert of a partition's earlier owner lands after its new owner decided.

A member's lease (ingest.lease) stops it from *sending* once it may have lost its
partitions, but an insert already sent can still be running on a slow ClickHouse when
the partitions move, and a send can be held up between the lease check and the server
(a stall, the network). So ownership is also kept on the server, in the
``write_fences`` table (migration 9), and each side does one thing there:

* a member **claims** its partitions before it decides for any of them in an assignment:
  it writes one row per partition with its *token* (unique per member and assignment)
  and a ``seq`` above every earlier claim of the group; then it lists the inserts of the
  group's other tokens that the server is running (``system.processes``, by the
  ``query_id`` every fenced insert carries), and waits until every one of them has ended
  (after ``patience_s`` it kills them, ``KILL QUERY … SYNC``, and waits on);
* every fenced insert **checks inside its own statement** that the latest claim (highest
  ``seq``) of each of its partitions is its own token; if not, ``throwIf`` fails the
  statement before anything is written (``Superseded``).

Why that is enough (docs/DESIGN.md, "The write fence", has the long form): an insert of
the old owner was registered by the server either before the new owner listed the
running inserts, and then the new owner waited until it ended (landed or not) before
deciding, or after, and then its own check ran after the new claim was stored, saw
another token and failed. A statement's check runs after the server registered it, so
there is no third case. On a cluster the claim is written to every replica (a quorum of
all of them) and read locally, and the running inserts are listed on every replica.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any

from clickhouse_connect.driver.client import Client

log = logging.getLogger(__name__)

FENCE_TABLE = "write_fences"
QUERY_ID_PREFIX = "livesales-w-"
SUPERSEDED_MESSAGE = "livesales write fence: a later claim owns these partitions"
# ClickHouse's code for a throwIf that fired (FUNCTION_THROW_IF_VALUE_IS_NON_ZERO)
_THROW_IF_CODE = "395"


class Superseded(Exception):
    """Another member claimed one of the batch's partitions after this one: nothing of the
    insert was written, and this member must not write those partitions again before it
    is assigned them anew."""


@dataclass(frozen=True)
class Claim:
    """One member's ownership of its partitions for one assignment."""

    group: str
    token: str  # unique per member and assignment (ingest.lease.Lease.token)
    partitions: tuple[tuple[str, int], ...]  # every partition of the assignment, sorted

    @property
    def group_tag(self) -> str:
        """A short fixed-width name of the group for query ids (any group name fits)."""
        return blake2b(self.group.encode(), digest_size=6).hexdigest()


@dataclass(frozen=True)
class FenceConfig:
    cluster: str | None = None  # LIVESALES_CLICKHOUSE_CLUSTER: claims go to every replica
    patience_s: float = 10.0  # how long an earlier owner's running insert is waited for before it is killed
    poll_s: float = 0.05


def _plain_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", name):
        raise ValueError(f"cluster name {name!r} is not a plain identifier")
    return name


def is_superseded(exc: BaseException) -> bool:
    text = str(exc)
    return SUPERSEDED_MESSAGE in text and _THROW_IF_CODE in text


@dataclass
class WriteFence:
    """Claims (``claim``) and fenced inserts (``insert``) over one ClickHouse client.

    ``embedded``: chDB in this process, which has no ``input()``: the batch goes through a
    temporary file and ``file()`` instead (same check, same statement otherwise)."""

    config: FenceConfig = field(default_factory=FenceConfig)
    embedded: bool = False
    clock: Callable[[], float] = time.monotonic
    _structures: dict[str, str] = field(default_factory=dict)
    _replicas: int | None = None
    claims = 0  # claims made (observability, tests)
    waited = 0  # earlier owners' inserts waited for
    killed = 0  # and of those, killed after the patience

    # -- the claim ------------------------------------------------------------------------
    def claim(self, client: Client, claim: Claim) -> None:
        """Own ``claim.partitions`` on the server; returns once no insert of an earlier
        claim can still land (the caller then refreshes and decides)."""
        tps = [(t, p) for t, p in claim.partitions]
        settings: dict[str, Any] = {}
        if self.config.cluster:  # acknowledged only once every replica holds the claim
            settings = {"insert_quorum": self._replica_count(client), "insert_quorum_parallel": 0}
        client.command(
            f"INSERT INTO {FENCE_TABLE} (consumer_group, topic, partition, token, seq)"  # noqa: S608
            " SELECT {g:String}, tp.1, tp.2, {tok:String}, greatest(toUInt64(toUnixTimestamp64Micro(now64(6))),"
            f" (SELECT max(seq) + 1 FROM {FENCE_TABLE} WHERE consumer_group = {{g:String}}))"
            " FROM (SELECT arrayJoin({tps:Array(Tuple(String, UInt32))}) AS tp)",
            parameters={"g": claim.group, "tok": claim.token, "tps": tps},
            settings=settings,
        )
        self.claims += 1
        earlier = self._running_of_others(client, claim)
        if earlier:
            log.warning("waiting for %d insert(s) of this group's earlier owners to end before deciding", len(earlier))
            self._wait_out(client, earlier)

    def _running_of_others(self, client: Client, claim: Claim) -> list[str]:
        return self._running(
            client,
            "startsWith(initial_query_id, {p:String}) AND NOT startsWith(initial_query_id, {mine:String})",
            {"p": QUERY_ID_PREFIX + claim.group_tag + "-", "mine": self.query_prefix(claim)},
        )

    def _running(self, client: Client, where: str, params: dict[str, Any]) -> list[str]:
        """The fenced inserts the server (every replica, on a cluster) is running, by the
        query id of the insert their client sent (a shard's part of it has its own)."""
        processes = "system.processes"
        if self.config.cluster:
            processes = "clusterAllReplicas({c:String}, system.processes)"
            params = {**params, "c": self.config.cluster}
        rows = client.query(
            f"SELECT DISTINCT initial_query_id FROM {processes} WHERE {where}",  # noqa: S608 - constants, values bound
            parameters=params,
        ).result_rows
        return [str(r[0]) for r in rows]

    def _wait_out(self, client: Client, ids: Sequence[str]) -> None:
        """Until none of ``ids`` runs; past the patience, kill them (SYNC) and wait on."""
        started, killed, waiting = self.clock(), False, list(ids)
        self.waited += len(waiting)
        while waiting:
            if not killed and self.clock() - started >= self.config.patience_s:
                on = f" ON CLUSTER `{_plain_name(self.config.cluster)}`" if self.config.cluster else ""
                sql = f"KILL QUERY{on} WHERE query_id IN {{ids:Array(String)}} SYNC"
                client.command(sql, parameters={"ids": waiting})
                self.killed += len(waiting)
                killed = True
                log.warning("killed %d insert(s) of earlier owners past %.0f s", len(waiting), self.config.patience_s)
            elif killed and self.clock() - started >= 3 * self.config.patience_s:
                # Killed and still listed: the claim fails (the writer retries it, from a
                # new claim), so a consumer is never stuck here past its own revocation.
                raise TimeoutError(f"{len(waiting)} insert(s) of earlier owners still running after KILL")
            time.sleep(self.config.poll_s)
            waiting = self._running(client, "initial_query_id IN {ids:Array(String)}", {"ids": waiting})

    def _replica_count(self, client: Client) -> int:
        if self._replicas is None:
            rows = client.query(
                "SELECT count() FROM system.clusters WHERE cluster = {c:String}", parameters={"c": self.config.cluster}
            ).result_rows
            self._replicas = int(rows[0][0])
        return self._replicas

    # -- the fenced insert ----------------------------------------------------------------
    @staticmethod
    def query_prefix(claim: Claim) -> str:
        return f"{QUERY_ID_PREFIX}{claim.group_tag}-{claim.token}-"

    def insert(
        self, client: Client, table: str, block: bytes, settings: dict[str, Any], claim: Claim,
        partitions: Sequence[tuple[str, int]],
    ) -> None:  # fmt: skip
        """Insert ``block`` (JSONEachRow) into ``table`` only while the latest claim of
        every one of ``partitions`` is ``claim``'s; else raise ``Superseded``."""
        tps = sorted({(t, p) for t, p in partitions})
        params: dict[str, Any] = {
            "g": claim.group, "tok": claim.token, "tps": tps, "n": len(tps),
            "s": self._structure(client, table),
        }  # fmt: skip
        check = (  # every value bound; the table and the message are constants
            f"throwIf((SELECT count() FROM (SELECT argMax(token, seq) AS t FROM {FENCE_TABLE}"  # noqa: S608
            " WHERE consumer_group = {g:String} AND (topic, partition) IN {tps:Array(Tuple(String, UInt32))}"
            " GROUP BY topic, partition) WHERE t = {tok:String}) != {n:UInt32},"
            f" '{SUPERSEDED_MESSAGE}') = 0"
        )
        settings = {**settings, "query_id": self.query_prefix(claim) + uuid.uuid4().hex[:12]}
        try:
            if self.embedded:
                self._insert_from_file(client, table, block, settings, params, check)
            else:
                client.command(
                    f"INSERT INTO {table} SELECT * FROM input({{s:String}}) WHERE {check} FORMAT JSONEachRow",  # noqa: S608
                    parameters=params, data=block, settings=settings,
                )  # fmt: skip
        except Exception as exc:
            if is_superseded(exc):
                raise Superseded(str(exc)[:300]) from exc
            raise

    def _insert_from_file(
        self, client: Client, table: str, block: bytes, settings: dict[str, Any], params: dict[str, Any], check: str
    ) -> None:
        fd, path = tempfile.mkstemp(suffix=".jsonl", prefix="livesales-fenced-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(block)
            client.command(
                f"INSERT INTO {table} SELECT * FROM file({{path:String}}, JSONEachRow, {{s:String}}) WHERE {check}",  # noqa: S608
                parameters={**params, "path": path}, settings=settings,
            )  # fmt: skip
        finally:
            os.unlink(path)

    def _structure(self, client: Client, table: str) -> str:
        """The columns of ``table`` as ``input()`` wants them ('name Type, …'), read once."""
        structure = self._structures.get(table)
        if structure is None:
            rows = client.query(
                "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = {t:String}"
                " ORDER BY position",
                parameters={"t": table},
            ).result_rows
            structure = self._structures[table] = ", ".join(f"`{name}` {typ}" for name, typ in rows)
        return structure
