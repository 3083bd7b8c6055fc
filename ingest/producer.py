"""The process's Kafka producer: idempotent, acks=all, and waited on.

Dead letters and gateway events are only "written" once the broker acknowledged them:
the consumer commits an offset after its dead letters are acked, and the gateway
answers ``accepted`` only for acked events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError

from processors.placement import partitions_for

log = logging.getLogger(__name__)


class _Refusal(logging.Filter):
    """Holds back aiokafka's ERROR for a refused InitProducerId while we try idempotence:
    that case is handled (below) and reported once, at INFO."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if "InitProducerId" in str(record.msg):
            self.held.append(record)
            return False
        return True


class ProduceError(RuntimeError):
    """The broker did not acknowledge a message (it is away, or refused it)."""


class Producer:
    def __init__(
        self, bootstrap: str, request_timeout_ms: int = 15_000, security: Mapping[str, Any] | None = None
    ) -> None:
        self._bootstrap = bootstrap
        self._security = dict(security or {})  # ingest.kafka_security
        self._timeout_ms = request_timeout_ms
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        sender = logging.getLogger("aiokafka.producer.sender")
        refusal = _Refusal()
        sender.addFilter(refusal)
        try:
            self._producer = await self._start(idempotent=True)
        except KafkaConnectionError:
            sender.removeFilter(refusal)
            for record in refusal.held:  # not a refusal: let its log through
                sender.handle(record)
            raise  # the broker is away: the caller retries; this is no reason to drop idempotence
        except KafkaError as exc:
            # Some Kafka-protocol brokers (Tansu, used by the demo and tests) refuse
            # InitProducerId. Retried sends may then duplicate a message, which the
            # consumers' event_id dedupe absorbs, so acks=all alone is still safe.
            log.info("idempotent producer refused by the broker (%r); using acks=all without idempotence", exc)
            self._producer = await self._start(idempotent=False)
        finally:
            sender.removeFilter(refusal)

    async def _start(self, idempotent: bool) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            enable_idempotence=idempotent,
            acks="all",
            linger_ms=5,
            max_batch_size=1 << 20,
            max_request_size=2 << 20,
            request_timeout_ms=self._timeout_ms,
            **self._security,
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        return producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def ping(self, timeout: float) -> None:
        """Ask the broker for its metadata; raises when it does not answer within ``timeout``
        (readiness: a frozen broker still accepts connections, but answers nothing)."""
        if self._producer is None:
            raise ProduceError("producer is not started")
        await asyncio.wait_for(self._producer.client.fetch_all_metadata(), timeout)

    @property
    def started(self) -> bool:
        return self._producer is not None

    async def send_all(self, messages: Sequence[tuple[str, bytes | None, bytes]]) -> list[BaseException | None]:
        """Send (topic, key, value) messages; per message, None when acked or the error."""
        if self._producer is None:
            raise ProduceError("producer is not started")
        futures: list[asyncio.Future[object] | BaseException] = []
        for topic, key, value in messages:
            try:
                futures.append(await self._producer.send(topic, value, key=key))
            except KafkaError as exc:
                futures.append(exc)
        out: list[BaseException | None] = []
        for fut in futures:
            if isinstance(fut, BaseException):
                out.append(fut)
                continue
            try:
                await fut
                out.append(None)
            except KafkaError as exc:
                out.append(exc)
        return out

    async def send_values(self, topic: str, values: Sequence[bytes]) -> None:
        """Send keyless values as whole record batches, spread over the topic's partitions;
        raises ProduceError unless every batch is acknowledged.

        For dead letters, which may come by the tens of thousands in a poison flood:
        ``send`` costs ~50 µs of this interpreter per message (partitioner, accumulator,
        one future each), appending to a batch a few."""
        producer = self._producer
        if producer is None:
            raise ProduceError("producer is not started")
        try:
            partitions = sorted(await producer.partitions_for(topic))
            futures: list[asyncio.Future[object]] = []

            async def ship(full: Any) -> None:
                partition = partitions[len(futures) % len(partitions)]
                futures.append(await producer.send_batch(full, topic, partition=partition))

            batch = producer.create_batch()
            for value in values:
                if batch.append(key=None, value=value, timestamp=None) is None:  # full: send it, start another
                    await ship(batch)
                    batch = producer.create_batch()
                    if batch.append(key=None, value=value, timestamp=None) is None:
                        raise ProduceError(f"a value of {len(value)} bytes does not fit in a batch")
            if batch.record_count():
                await ship(batch)
            await asyncio.gather(*futures)
        except KafkaError as exc:
            raise ProduceError(f"{len(values)} messages to {topic} not acknowledged: {exc!r}") from exc

    async def send_placed(self, messages: Sequence[tuple[str, bytes, bytes, int]]) -> None:
        """Send (topic, key, value, partition) messages as record batches, one stream per
        partition in the given order; raises ProduceError unless every batch is
        acknowledged. For the consumer's forwards (ingest.routing), which come by the
        tens of thousands when producers send no keys: as ``send_values``, a batch append
        costs a few µs where ``send`` costs ~50."""
        producer = self._producer
        if producer is None:
            raise ProduceError("producer is not started")
        try:
            futures: list[asyncio.Future[object]] = []
            open_batches: dict[tuple[str, int], Any] = {}
            for topic, key, value, partition in messages:
                where = (topic, partition)
                batch = open_batches.get(where)
                if batch is None:
                    batch = open_batches[where] = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it, start another
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = open_batches[where] = producer.create_batch()
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        raise ProduceError(f"a value of {len(value)} bytes does not fit in a batch")
            for (topic, partition), batch in open_batches.items():
                if batch.record_count():
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
            await asyncio.gather(*futures)
        except KafkaError as exc:
            raise ProduceError(f"{len(messages)} forwarded messages not acknowledged: {exc!r}") from exc

    async def send_keyed(self, topic: str, messages: Sequence[tuple[bytes, bytes]]) -> None:
        """Send (key, value) messages to the partitions the default partitioner would pick
        (murmur2 of the key, as processors.placement checks), as record batches; raises
        ProduceError unless all are acknowledged. For the connectors' thousands of events a
        reconciliation page: ``send`` costs ~50 µs a message, a batch append a few."""
        producer = self._producer
        if producer is None:
            raise ProduceError("producer is not started")
        if not messages:
            return
        try:
            count = len(await producer.partitions_for(topic))
        except KafkaError as exc:
            raise ProduceError(f"{len(messages)} messages to {topic} not sent: {exc!r}") from exc
        chosen = partitions_for([k for k, _ in messages], count).tolist()
        await self.send_placed([(topic, k, v, p) for (k, v), p in zip(messages, chosen, strict=True)])

    async def send_all_or_raise(self, messages: Sequence[tuple[str, bytes | None, bytes]]) -> None:
        errors = [e for e in await self.send_all(messages) if e is not None]
        if errors:
            raise ProduceError(f"{len(errors)} of {len(messages)} messages not acknowledged: {errors[0]!r}")
