"""What collecting training data looks like from outside (pure: plain values, no I/O).

One :class:`DatasetStatus` per camera is read by the status topic (``dataset``
in ``P/<camera>/status``, which Home Assistant's "Saved for training today" and
"Waiting to upload" sensors read), the page and ``/api/status``; the metrics
read :class:`Outcome` counts per :class:`Reason`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Protocol

from .strenum import StrEnum


class Reason(StrEnum):
    """Why a frame is worth labelling (``dataset/sampling.py``); declared most valuable first
    (a sample's first reason). Here, below the dataset package: the metrics name them all."""

    ON_DEMAND = "on_demand"
    OVERRULED = "overruled"
    CHANGE = "change"
    UNCERTAIN = "uncertain"
    RANDOM = "random"


class Outcome(StrEnum):
    """What became of a sampled frame (the ``outcome`` label of
    ``edge_agent_dataset_uploads_total``)."""

    QUEUED = "queued"  # kept in the upload queue (on disk)
    UPLOADED = "uploaded"  # the upload API took it (and its label)
    DUPLICATE = "duplicate"  # the upload API had it already: done
    LIMITED = "limited"  # skipped: a per_hour / per_day limit (camera or total) was reached
    SIMILAR = "similar"  # skipped: a near-duplicate of one saved in the last hour for the same reason and class
    REFUSED = "refused"  # the upload API refused this frame on its merits: dropped
    DROPPED = "dropped"  # not kept: the queue was full (the oldest go), or the disk refused
    FAILED = "failed"  # one upload try failed (the frame stays queued and is retried)


class Paused(StrEnum):
    """Why uploads stopped until the config changes."""

    UNAUTHORIZED = "unauthorized"  # 401/403: the key is wrong, or may not write to the dataset
    NOT_FOUND = "not_found"  # 404: no such project


@dataclass(frozen=True)
class DatasetStatus:
    """Collection as one camera sees it; the queue and the uploads are shared by all cameras."""

    saved_today: int  # this camera's frames saved for training today (queued; most are sent by now)
    saved_hour: int  # ... in the last hour
    queued: int  # frames waiting to upload, all cameras
    queued_mb: float
    sent_today: int  # frames the upload API took today, all cameras (since this start, or the day began)
    dropped: int  # frames dropped since start: queue full or disk refused
    paused: Paused | None  # uploads stopped until the config changes; None: uploading
    last_error: str | None  # the last upload failure (redacted), None after a success

    def payload(self) -> dict[str, Any]:
        """For the status topic and /api/status (plain JSON values)."""
        out = asdict(self)
        out["queued_mb"] = round(self.queued_mb, 2)
        out["paused"] = None if self.paused is None else str(self.paused)
        return out


class CollectionView(Protocol):
    """What the status topic, the page, /api/status and the metrics read of the
    agent's collection (``Agent.collection``, None unless ``dataset.enabled``)."""

    def enabled_for(self, camera: str) -> bool:
        """This camera's frames may be collected (``cameras[].sampling.enabled``)."""
        ...

    def status(self, camera: str) -> DatasetStatus: ...

    def counts(self) -> Mapping[tuple[str, str], int]:
        """Frames by (reason, outcome) since this start (the metric's labels: a
        :class:`~.sampling.Reason` and an :class:`Outcome`)."""
        ...

    def queue_length(self) -> int: ...

    def queue_bytes(self) -> int: ...

    def saved(self, camera: str, at: float) -> bool:
        """The frame this camera captured at ``at`` (an event's ``at``) was saved for
        training since this start."""
        ...
