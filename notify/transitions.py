"""A transition (an alert firing or clearing, a channel going live or ending) and the
delivery of one to one robot, as they travel on the notifications topic.

The id is derived from the stored data alone — channel, rule, edge and the moment that
defines it (an episode's start on the channel's clock; a live session's first or last
storage time) — so every detecting process, however many and whenever started, names
the same transition the same way, and the senders can post each id once (docs/NOTIFY.md).
A delivery carries everything its message needs: the sender reads nothing back from the
store but the record of what was already posted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

EDGES = ("firing", "cleared", "live", "ended")
FORMAT = 1  # a delivery's "v"; a sender skips (and counts) versions it does not know


@dataclass(frozen=True)
class Place:
    platform: str
    district: str  # '' when unknown (a channel known from stream stats only)
    township: str
    title: str | None = None
    host: str | None = None


@dataclass(frozen=True)
class Figures:
    """The channel's totals when the transition was seen (for 下播: the sale's totals)."""

    paid_orders: int = 0
    gmv_fen: int = 0
    refund_fen: int = 0
    weight_g: int = 0
    views_total: int | None = None
    viewers_peak: int | None = None
    first_ms: int | None = None  # the channel's first event, epoch ms
    last_ms: int | None = None  # its clock: the newest event, epoch ms


@dataclass(frozen=True)
class Transition:
    channel_id: str
    rule: str  # silence | refund_spike | pace_drop | live_started | live_ended
    edge: str  # firing | cleared | live | ended
    key_ms: int  # what makes it one transition (see make_id)
    at_ms: int  # when it happened on the channel's clock (what the message shows)
    detected_ms: int  # processing time it was first seen by its detector (age: dropped after an hour)
    place: Place
    figures: Figures = field(default_factory=Figures)
    text: str | None = None  # the alert's banner (api.alerts.message), for alert transitions

    @property
    def id(self) -> str:
        return make_id(self.channel_id, self.rule, self.edge, self.key_ms)


def make_id(channel_id: str, rule: str, edge: str, key_ms: int) -> str:
    """``<channel>|<rule>|<edge>|<ms>``: read from the right, so a ``|`` inside a channel
    id cannot make two transitions one."""
    return f"{channel_id}|{rule}|{edge}|{key_ms}"


@dataclass(frozen=True)
class Delivery:
    """One transition for one robot: the unit that is posted once and recorded."""

    robot: str
    transition: Transition

    @property
    def key(self) -> tuple[str, str]:
        return self.robot, self.transition.id


def encode(d: Delivery) -> tuple[bytes, bytes]:
    """(Kafka key, value). Keyed by the robot: one partition holds every delivery of a
    robot, so one member posts to it — in order, within its rate limit — and decides
    every copy of each of its ids (docs/NOTIFY.md, "Why keyed by robot")."""
    value = orjson.dumps({"v": FORMAT, "robot": d.robot, "transition": asdict(d.transition)})
    return d.robot.encode(), value


class BadDelivery(ValueError):
    """A record on the topic that is not a delivery this version can read."""


def decode(value: bytes | None) -> Delivery:
    try:
        doc: Any = orjson.loads(value or b"")
        if not isinstance(doc, dict) or doc.get("v") != FORMAT:
            raise BadDelivery(f"unknown delivery format {doc.get('v') if isinstance(doc, dict) else None!r}")
        t = dict(doc["transition"])
        place = Place(**t.pop("place"))
        figures = Figures(**t.pop("figures"))
        transition = Transition(place=place, figures=figures, **t)
        if transition.edge not in EDGES:
            raise BadDelivery(f"unknown edge {transition.edge!r}")
        return Delivery(str(doc["robot"]), transition)
    except BadDelivery:
        raise
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise BadDelivery(f"not a delivery: {exc}") from None
