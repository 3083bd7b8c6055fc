"""TLS and SASL options for every aiokafka client of a process, from one place.

The consumer, the producer and the admin client each take the same keyword arguments;
building them here means a cluster that requires SASL_SSL is configured once, by the
``LIVESALES_KAFKA_*`` settings, and no client is left talking PLAINTEXT.
"""

from __future__ import annotations

import ssl
from typing import Any

from ground.settings import Settings


def kafka_security(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaConsumer, AIOKafkaProducer and AIOKafkaAdminClient."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        options["ssl_context"] = ssl.create_default_context(cafile=cafile)  # verifies host names
    if protocol.startswith("SASL_"):
        password = settings.kafka_sasl_password
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = password.get_secret_value() if password else None
    return options
