"""The loop's own tasks for frames in flight and events being recorded: kept so
the agent knows when it is busy, and so a stop waits for them (a short grace on a
signal, to the API timeout when every file ended), then cancels what is left."""

from __future__ import annotations

import asyncio
from typing import Any, Coroutine


class TaskSet:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def __bool__(self) -> bool:
        return bool(self._tasks)

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for every task, then cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=0.5)
