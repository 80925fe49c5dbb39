"""Channels between pipeline stages: a bounded FIFO, and a one-slot channel where the newest item wins.

Both carry `END` once the upstream stages have finished; a closed channel hands out what it still
holds, then `END`, so a drain loses nothing that was accepted.
"""
from __future__ import annotations

import threading
from collections import deque

END = object()
"""Sentinel a stage sends downstream when it has finished (stop or end of stream)."""


class Channel:
    """Bounded FIFO between two stages: `put` blocks while full (back-pressure).

    Args:
        maxsize: Items held at most.
        name: For stats and logs.
        on_drop: Called with each item refused because the channel has ended (to recycle buffers).
    """

    def __init__(self, maxsize: int = 2, name: str = "", on_drop=None):
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.name = name
        self.maxsize = maxsize
        self._items: deque = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._ended = False
        self._on_drop = on_drop
        self.dropped = 0

    def put(self, item) -> None:
        """Add an item, waiting while the channel is full."""
        with self._not_full:
            while len(self._items) >= self.maxsize and not self._ended:
                self._not_full.wait()
            refused = self._ended
            if refused:
                self.dropped += 1
            else:
                self._items.append(item)
                self._not_empty.notify()
        if refused and self._on_drop is not None:
            self._on_drop(item)

    def offer(self, item) -> bool:
        """Add an item only if there is room now (never waits); False when full or ended (the item is not taken)."""
        with self._lock:
            if self._ended or len(self._items) >= self.maxsize:
                return False
            self._items.append(item)
            self._not_empty.notify()
        return True

    def get(self, timeout: float | None = None):
        """The oldest item; `END` once ended and empty; ``None`` on timeout."""
        with self._not_empty:
            while not self._items:
                if self._ended:
                    return END
                if not self._not_empty.wait(timeout):
                    return None
            item = self._items.popleft()
            self._not_full.notify()
            return item

    def end(self) -> None:
        """No more items will come; waiting readers get what is left, then `END`."""
        with self._lock:
            self._ended = True
            self._not_empty.notify_all()
            self._not_full.notify_all()

    def __len__(self) -> int:
        return len(self._items)


class LatestSlot(Channel):
    """One-item channel where `put` never blocks: a newer item replaces an unread one.

    Used between capture and inference, so a slow model never builds a backlog of stale frames.
    `dropped` counts replaced items; ``on_drop`` (if given) is called with each of them, to recycle
    its buffers.
    """

    def __init__(self, name: str = "", on_drop=None):
        super().__init__(1, name, on_drop)

    def put(self, item) -> None:
        old = None
        with self._lock:
            if self._ended:
                self.dropped += 1
                old = item
            else:
                if self._items:
                    old = self._items.popleft()
                    self.dropped += 1
                self._items.append(item)
                self._not_empty.notify()
        if old is not None and self._on_drop is not None:
            self._on_drop(old)
