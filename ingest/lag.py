"""How far behind a consumer is, per assigned partition, and whether the broker's
numbers for it can be believed (ingest.consumer.Consumer.update_lag)."""

from __future__ import annotations

from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError

from ground.metrics import Metrics


def fetched_end(kafka: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    """The partition's end as the last fetch response gave it (None before any fetch)."""
    lso = kafka.last_stable_offset(tp)
    if lso is not None and lso >= 0:
        return int(lso)
    hw = kafka.highwater(tp)
    return int(hw) if hw is not None and hw >= 0 else None


def lag_trustworthy(end: int, committed: int, fetched: int | None) -> bool:
    """Whether a partition's ListOffsets end can be believed: never below what this
    group committed (those records were read), nor below the stable offset the last
    fetch response reported (a log does not shrink)."""
    return end >= committed and (fetched is None or end >= fetched)


async def measure_lag(
    kafka: AIOKafkaConsumer, committed_here: Mapping[TopicPartition, int], metrics: Metrics
) -> tuple[int, bool] | None:
    """Lag = the broker's end offset (ListOffsets; with read_committed, the last stable
    offset) minus what this member committed, per assigned partition; the total and
    whether every partition's end could be believed (None: the broker did not answer).

    Some Kafka-protocol brokers (Tansu) answer ListOffsets with numbers that do not
    follow the log: 1 for a partition holding 51 records, or the start of its last
    batch. The fetch responses' last stable offset, which the consumer sees anyway,
    is right there. So a partition whose end offset is below what was committed or
    below what its own fetches reported is flagged (``livesales_lag_trustworthy`` 0,
    and in /readyz), and its lag is taken from the fetches instead.
    """
    assigned = list(kafka.assignment())
    if not assigned:
        return 0, True
    try:
        # read before asking for end offsets, so a fetch landing meanwhile cannot look ahead of them
        fetched = {tp: fetched_end(kafka, tp) for tp in assigned}
        ends = await kafka.end_offsets(assigned)
        committed: dict[TopicPartition, int] = {}
        for tp in assigned:
            if tp in committed_here:
                committed[tp] = committed_here[tp]
            else:
                committed[tp] = await kafka.committed(tp) or 0
    except (KafkaError, IllegalStateError):
        return None
    total, trusted_all = 0, True
    for tp in assigned:
        end, done = ends[tp], committed[tp]
        trusted = lag_trustworthy(end, done, fetched[tp])
        lag = max(0, (end if trusted else max(fetched[tp] or 0, done)) - done)
        total += lag
        trusted_all = trusted_all and trusted
        labels = (tp.topic, str(tp.partition))
        metrics.lag.labels(*labels).set(lag)
        metrics.lag_trustworthy.labels(*labels).set(1 if trusted else 0)
    return total, trusted_all
