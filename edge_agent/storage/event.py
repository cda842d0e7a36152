"""What one stored event is, and how a row of the ``events`` table becomes one.

Pure: no database here, only the dataclass the rest of the agent handles (the
MQTT output publishes its :meth:`Event.payload`, the web side shows it) and the
mapping from the one ``SELECT`` every event query shares.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Delivery(enum.IntEnum):
    """Delivery states in ``events.delivered``.  The store's SQL spells them as literals
    (``delivered = 0``): SQLite uses the partial index ``events_pending`` only then."""
    PENDING = 0
    DELIVERED = 1
    DROPPED = 2  # over max_pending: never published, still in the history


@dataclass(frozen=True)
class Event:
    id: int
    camera: str
    cls: str
    previous: str | None
    confidence: float
    at: float  # epoch s: capture time of the frame that decided it
    delivered: bool  # False for pending and for dropped events
    has_thumbnail: bool

    def payload(self) -> dict[str, Any]:
        """What is published: ``{"id", "camera", "class", "previous", "confidence", "at"}``."""
        return {"id": self.id, "camera": self.camera, "class": self.cls, "previous": self.previous,
                "confidence": round(self.confidence, 6), "at": round(self.at, 3)}


# The columns event_from_row() reads, in its order; queries append WHERE / ORDER BY / LIMIT.
SELECT = ("SELECT id, camera, class, previous, confidence, at, delivered, "
          "EXISTS (SELECT 1 FROM thumbnails WHERE event_id = events.id) FROM events")


def event_from_row(row: tuple[Any, ...]) -> Event:
    return Event(id=row[0], camera=row[1], cls=row[2], previous=row[3], confidence=row[4],
                 at=row[5], delivered=row[6] == Delivery.DELIVERED, has_thumbnail=bool(row[7]))
