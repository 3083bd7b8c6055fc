"""TLS and SASL options for every aiokafka client of a process, from one place.

The consumer, the producer and the admin client each take the same keyword arguments;
building them here means a cluster that requires SASL_SSL is configured once, by the
``LIVESALES_KAFKA_*`` settings, and no client is left talking PLAINTEXT.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class KafkaAccess:
    """Where the brokers are and how to authenticate to them."""

    bootstrap: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None  # none: the system's CAs


def kafka_security(access: KafkaAccess) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaConsumer, AIOKafkaProducer and AIOKafkaAdminClient."""
    protocol = access.security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl.create_default_context(cafile=access.ssl_cafile)  # verifies host names
    if protocol.startswith("SASL_"):
        options["sasl_mechanism"] = access.sasl_mechanism
        options["sasl_plain_username"] = access.sasl_username
        options["sasl_plain_password"] = access.sasl_password
    return options
