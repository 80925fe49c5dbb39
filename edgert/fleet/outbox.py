"""`Outbox`: delivers the journal's events to the fleet broker, so that no event is lost between the two.

Events are published from the journal (`edgert.journal.EventLog`), never from memory: a thread takes the
oldest ``pending`` rows while the link is up, publishes each on ``<p>/<d>/events`` (one JSON object,
QoS 1, `FleetAgent.send`) and marks a row ``published`` only once the broker's PUBACK for it has come
back. A broker that is away, a dropped link or a restart of the service leave the rows ``pending``, and
they go out, in journal order, when the link is back; waits between failed rounds double from
`retry_min_s` to `retry_max_s`.

Duplicates: QoS 1 is at-least-once. When the process dies (or the link drops) after the broker received
an event and before its PUBACK was recorded, the event is sent again. Every payload carries the event's
``event_id`` (unique across journals and devices) and its journal ``seq``, so a consumer dedupes on
``event_id``.

After each delivered batch the retained ``<p>/<d>/counts/<camera>`` of every camera in it is
republished from the journal's totals (`EventLog.counts`).
"""
from __future__ import annotations

import logging
import re
import threading
import time

from edgert.core.errors import one_line
from edgert.journal.events import EventLog, EventRow

log = logging.getLogger(__name__)

_TOPIC_UNSAFE = re.compile(r"[/#+\s]+")


class Outbox:
    """The publishing thread between an `EventLog` and a `FleetAgent` (see the module docstring).

    Args:
        events: The journal's events.
        agent: The fleet agent (``connected``, ``send(kind, payload, retain=...)``).
        batch: Events published per round at most.
        ack_timeout_s: How long a round waits for the PUBACKs; unacknowledged events are sent again later.
        retry_min_s: First wait after a failed round; doubles per failure.
        retry_max_s: Longest wait between rounds.
    """

    def __init__(self, events: EventLog, agent, *, batch: int = 100, ack_timeout_s: float = 20.0,
                 retry_min_s: float = 0.5, retry_max_s: float = 30.0):
        self.events = events
        self.agent = agent
        self.batch = int(batch)
        self.ack_timeout_s = float(ack_timeout_s)
        self.retry_min_s = float(retry_min_s)
        self.retry_max_s = float(retry_max_s)
        self.published = 0
        self.retries = 0
        self.errors = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._delay = self.retry_min_s

    def start(self) -> None:
        """Start the publishing thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="edgert-outbox", daemon=True)
            self._thread.start()

    def wake(self, *_args) -> None:
        """New rows were journaled (an `EventRecorder` listener): look now rather than at the next poll."""
        self._wake.set()

    def backlog(self) -> int:
        """Events the broker has not acknowledged yet."""
        return self.events.count(outbox="pending")

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread; rows not acknowledged stay pending for the next start. Idempotent."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # -- the thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                outcome = self._round()
            except Exception as exc:  # noqa: BLE001 - a journal or client failure is retried, never fatal
                self.errors += 1
                log.error("fleet outbox: %s; retrying in %.1f s", one_line(exc), self._delay)
                outcome = "failed"
            if outcome == "sent":
                self._delay = self.retry_min_s
                continue  # more may be pending
            if outcome == "failed":
                self.retries += 1
                self._pause(self._delay)
                self._delay = min(self._delay * 2, self.retry_max_s)
            else:  # idle, or the link is down: wait for a new event (or poll the link)
                self._pause(1.0 if outcome == "idle" else self.retry_min_s)

    def _pause(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _round(self) -> str:
        """Publish one batch and record its acknowledgements: "sent", "idle", "offline" or "failed"."""
        if not self.agent.connected:
            return "offline"
        rows = self.events.pending(self.batch)
        if not rows:
            return "idle"
        handles = []
        for row in rows:
            info = self.agent.send("events", row.payload())
            if info is None:
                break  # the link went down mid-batch
            handles.append((row, info))
        acked = self._wait_for_acks(handles)
        if acked:
            self.events.mark_published([row.id for row in acked])
            self.published += len(acked)
            self._publish_counts(acked)
        return "sent" if acked and len(acked) == len(rows) else "failed"

    def _wait_for_acks(self, handles: list) -> list[EventRow]:
        """The rows whose PUBACK came back within `ack_timeout_s`."""
        deadline = time.monotonic() + self.ack_timeout_s
        while not self._stop.is_set():
            if all(info.is_published() for _, info in handles) or time.monotonic() >= deadline:
                break
            self._stop.wait(0.005)
        return [row for row, info in handles if info.is_published()]

    def _publish_counts(self, rows: list[EventRow]) -> None:
        for camera in sorted({row.camera for row in rows if row.camera is not None}):
            counts = {"camera": camera, **self.events.counts(camera), "time": time.time()}
            self.agent.send(f"counts/{_TOPIC_UNSAFE.sub('_', camera)}", counts, retain=True)
