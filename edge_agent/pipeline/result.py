"""One classification as it flows through the stages (loop-owned, no I/O).

A :class:`Result` is made once per reply and handed to every stage in order;
a stage reads what the stages before it set (``state``, ``decided``,
``in_state``) and adds its own. The frame travels whole: the kept region as
captured (``frame.preview``) and the JPEG that was sent (``frame.jpeg``), so a
later stage (dataset sampling, #20) has the picture the model saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..budget import Priority
from ..classify import Reply
from ..decide import State
from ..failover import Endpoint

if TYPE_CHECKING:
    from ..camera import CameraRuntime
    from ..capture import Frame


@dataclass
class Result:
    camera: "CameraRuntime"
    frame: "Frame"
    reply: Reply
    started: float  # monotonic: when the request went out
    view: str | None = None  # a view of the camera (#21); None: the whole picture
    endpoint: Endpoint = Endpoint.PRIMARY  # which endpoint classified it (#22)
    model: str | None = None  # the model that endpoint was asked for (None: the camera's)
    # Set by the decide stage:
    state: State | None = None  # a state this result decided (a change, or resumed after a restart)
    decided: State | None = None  # the camera's decided state after this result
    in_state: float | None = None  # this result's confidence in the decided class (0: it did not name it)
    was_stale: bool = False  # the state was marked stale before this result checked it
    stale_changed: bool = False  # this result made the state stale (unsettled) or fresh again
    new_picture: bool = False  # the debouncer took it as the first look at a new picture (a change to check)

    @property
    def reason(self) -> Priority | None:
        """Why the call was made (the change gate's or a user's reason)."""
        slot = self.frame.slot
        return None if slot is None else slot.reason

    @property
    def picture_changed(self) -> bool:
        """The change gate saw this frame differ from the last classified one."""
        return bool(self.frame.slot and self.frame.slot.picture_changed)

    @property
    def captured_at(self) -> float:
        return self.frame.captured_at


class Stage(Protocol):
    """One step after a classification. ``handle`` runs on the loop and must not
    block; slow work (a commit, an upload) is spawned by the stage itself."""

    name: str

    def handle(self, result: Result) -> None: ...
