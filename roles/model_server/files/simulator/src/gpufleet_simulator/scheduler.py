"""Sequence slots: at most max_num_seqs run, the rest wait in FIFO order, like vLLM's scheduler."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class QueueFull(Exception):
    """The bounded waiting queue has no room."""


class Scheduler(Generic[T]):
    def __init__(self, max_running: int, max_waiting: int = 0) -> None:
        self.max_running = max_running
        self.max_waiting = max_waiting
        self.running: set[T] = set()
        self._waiting: deque[tuple[asyncio.Future, T]] = deque()

    @property
    def num_running(self) -> int:
        return len(self.running)

    @property
    def num_waiting(self) -> int:
        return len(self._waiting)

    def has_room(self, count: int = 1) -> bool:
        """Whether admit() would run or queue the next count items rather than reject any."""
        if not self.max_waiting:
            return True
        free = 0 if self._waiting else max(self.max_running - len(self.running), 0)
        return len(self._waiting) + max(count - free, 0) <= self.max_waiting

    async def admit(self, item: T) -> float:
        """Wait for a slot; returns the monotonic time the item started running."""
        if not self._waiting and len(self.running) < self.max_running:
            self.running.add(item)
            return time.monotonic()
        if not self.has_room():
            raise QueueFull(f"waiting queue is full ({self.max_waiting} requests)")
        admitted: asyncio.Future = asyncio.get_running_loop().create_future()
        entry = (admitted, item)
        self._waiting.append(entry)
        try:
            return await admitted
        except asyncio.CancelledError:
            if admitted.done() and not admitted.cancelled():
                self.release(item)  # handed a slot in the same instant the client went away
            elif entry in self._waiting:  # release() may already have dropped the cancelled entry
                self._waiting.remove(entry)
            raise

    def release(self, item: T) -> None:
        """Free the item's slot and hand it straight to the longest waiter, so nobody can jump the queue."""
        self.running.discard(item)
        while self._waiting and len(self.running) < self.max_running:
            admitted, waiter = self._waiting.popleft()
            if admitted.cancelled():
                continue
            self.running.add(waiter)
            admitted.set_result(time.monotonic())
