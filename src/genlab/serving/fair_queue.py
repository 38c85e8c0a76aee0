"""Rows waiting for a place in the batch, shared fairly between the client requests they belong to.

A first-in-first-out queue of rows lets one request with thousands of prompts hold every slot of the
batch until its last row has run, while a three-token request waits behind it. :class:`FairQueue`
keeps one queue per *group* (one client request: all its prompts and choices) and hands out rows one
at a time to the group with the fewest rows in the batch now, ties going to the group served least
recently (round-robin). So when a slot frees, a request that has none gets it ahead of the next row of
a request that already decodes several; a request alone still fills the whole batch.

Slots free only when a row ends: a new request waits for the first row of the batch to finish (no
preemption), which the per-request row cap and ``max_tokens`` cap bound.

Not thread-safe: the scheduler calls it under its own lock.
"""

from __future__ import annotations

import collections
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

Item = TypeVar("Item")


class FairQueue(Generic[Item]):
    def __init__(self) -> None:
        self._groups: collections.OrderedDict[Hashable, collections.deque[Item]] = collections.OrderedDict()
        self._running: collections.Counter[Hashable] = collections.Counter()  # group -> its rows in the batch
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def push(self, group: Hashable, items: Iterable[Item]) -> None:
        """Queue ``items`` behind the group's earlier ones (a new group joins the rotation last)."""
        queue = self._groups.setdefault(group, collections.deque())
        before = len(queue)
        queue.extend(items)
        self._size += len(queue) - before

    def pop(self) -> tuple[Hashable, Item] | None:
        """The next row: the first waiting group with the fewest rows running gives its oldest one."""
        if not self._groups:
            return None
        group = min(self._groups, key=self._running.__getitem__)  # min keeps the first of equals: rotation order
        queue = self._groups[group]
        item = queue.popleft()
        self._size -= 1
        if queue:
            self._groups.move_to_end(group)
        else:
            del self._groups[group]
        return group, item

    def started(self, group: Hashable) -> None:
        """One of ``group``'s rows entered the batch."""
        self._running[group] += 1

    def ended(self, group: Hashable) -> None:
        """One of ``group``'s rows left the batch."""
        self._running[group] -= 1
        if self._running[group] <= 0:
            del self._running[group]

    def running(self, group: Hashable) -> int:
        return self._running[group]

    def drain(self) -> list[Item]:
        """Every waiting row, removed (the running counts are kept)."""
        items = [item for queue in self._groups.values() for item in queue]
        self._groups.clear()
        self._size = 0
        return items
