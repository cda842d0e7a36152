"""The one interface through which the outputs and the web side see the event
store: they are typed against :class:`EventReader`, never against the concrete
:class:`~.eventlog.EventLog`, so what lies beneath (SQLite, its thread) can
change without them.

Nothing here may hold up the agent's loop: the async calls run on the store's
own thread, the others only read figures kept in memory or hand work to that
thread.  A store that is missing or failing answers with the empty default (no
events, no picture): readers never see a store error.
"""

from __future__ import annotations

from typing import Iterable, Protocol, Sequence

from .event import Event


class EventReader(Protocol):
    """The event history and store-and-forward, as its readers use it."""

    async def history(self, *, camera: str | None = None, since: float | None = None,
                      until: float | None = None, limit: int = 100) -> list[Event]:
        """Events newest first, ``since <= at < until`` (the web side's history)."""
        ...

    async def thumbnail(self, event_id: int) -> bytes | None:
        """The picture of the frame that decided the event, or None."""
        ...

    async def undelivered(self, after: int, limit: int) -> list[Event]:
        """The oldest events not yet acknowledged by the broker, after id ``after``, in id order."""
        ...

    def delivered(self, ids: Iterable[int]) -> None:
        """The broker acknowledged these events (the one change a reader makes; not awaited)."""
        ...

    def stats(self) -> dict[str, int]:
        """``{"events", "undelivered", "dropped", "bytes"}`` as of the store's last change."""
        ...

    @property
    def add_seconds(self) -> Sequence[float]:
        """How long the latest commits took, fsync included (seconds)."""
        ...
