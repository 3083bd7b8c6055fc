"""The notifications table: the latest state wins, a final state outranks a late 'retrying'."""

from __future__ import annotations

from notify.records import Records, latest, seq
from processors.store import ClickHouse
from tests.notify.samples import AT_MS, delivery


def test_seq_ranks_state_before_time() -> None:
    assert seq("sent", 1.0) > seq("dropped", 2.0e9) > seq("retrying", 3.0e9)
    assert seq("retrying", 2.0) > seq("retrying", 1.0)


async def test_states_and_latest(clickhouse: ClickHouse) -> None:
    now = [1_800_000_000.0]
    records = Records(clickhouse, clock=lambda: now[0])
    a, b = delivery("r1"), delivery("r2", edge="cleared")
    await records.record(a, "retrying", 1, AT_MS, "HTTP 503")
    now[0] += 1
    await records.record(a, "sent", 2, AT_MS)
    now[0] += 1
    await records.record(a, "retrying", 1, AT_MS, "late write of a member that lost its partition")
    await records.record(b, "retrying", 3, AT_MS - 5000, "timed out")
    states = await records.states([a.key, b.key, ("r3", "nope")])
    assert states[a.key].state == "sent" and states[a.key].attempts == 2 and states[a.key].created_ms == AT_MS
    assert states[b.key].state == "retrying" and states[b.key].created_ms == AT_MS - 5000
    assert ("r3", "nope") not in states
    rows = await latest(clickhouse, 10)
    assert [(r["robot"], r["state"]) for r in rows] == [("r2", "retrying"), ("r1", "sent")]
    r2 = rows[0]
    assert r2 == {
        "robot": "r2", "channel_id": "nh-live", "kind": "cleared", "rule": "silence", "state": "retrying",
        "attempts": 3, "created_at": "2026-05-01T10:19:55.000+08:00", "happened_at": "2026-05-01T10:20:00.000+08:00",
        "updated_at": "2027-01-15T16:00:02.000+08:00", "last_error": "timed out",
        "notification_id": b.transition.id,
    }  # fmt: skip
    assert len(await latest(clickhouse, 1)) == 1 and len(await latest(clickhouse, 0)) == 1
