"""`Outbox`: delivers the journal's events to the fleet broker, so that no event is lost between the two.

Events are published from the journal (`edgert.journal.EventLog`), never from memory: a thread takes the
oldest ``pending`` rows while the link is up, publishes each on ``<p>/<d>/events`` (one JSON object,
QoS 1, `FleetAgent.send`) and marks a row ``published`` only once the broker's PUBACK for it has come
back. A broker that is away, a dropped link or a restart of the service leave the rows ``pending``, and
they go out, in journal order, when the link is back; waits between failed rounds double from
`retry_min_s` to `retry_max_s`.

Duplicates: QoS 1 is at-least-once. When the process dies after the broker received an event and before
its PUBACK was recorded, the next start sends it again; when the link drops with an event in flight, paho
sends it again (flagged DUP) after the reconnect, and the broker may pass both copies on. Every payload carries the event's
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
_QUEUED = (0, 4)  # paho's MQTT_ERR_SUCCESS, MQTT_ERR_NO_CONN (queued, sent once the link is back)


class Outbox:
    """The publishing thread between an `EventLog` and a `FleetAgent` (see the module docstring).

    Args:
        events: The journal's events.
        agent: The fleet agent (``connected``, ``send(kind, payload, retain=...)``).
        batch: Events published per round at most.
        ack_timeout_s: How long a round waits for the PUBACKs before it backs off (they stay in flight).
        retry_min_s: First wait after a failed round; doubles per failure.
        retry_max_s: Longest wait between rounds.
        resend_after_s: An event in flight this long without its PUBACK is published again.
    """

    def __init__(self, events: EventLog, agent, *, batch: int = 100, ack_timeout_s: float = 20.0,
                 retry_min_s: float = 0.5, retry_max_s: float = 30.0, resend_after_s: float = 600.0):
        self.events = events
        self.agent = agent
        self.batch = int(batch)
        self.ack_timeout_s = float(ack_timeout_s)
        self.retry_min_s = float(retry_min_s)
        self.retry_max_s = float(retry_max_s)
        self.resend_after_s = float(resend_after_s)
        self._inflight: dict[int, tuple[EventRow, object, float]] = {}  # row id -> (row, paho handle, sent)
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
        """Publish one batch and record its acknowledgements: "sent", "idle", "offline" or "failed".

        A row handed to paho stays in flight until its PUBACK (paho resends it after a reconnect by
        itself), so a slow or half-open link never has it sent twice by this loop; only a row paho did
        not take, or one unacknowledged for `resend_after_s`, is published again.
        """
        settled = self._settle()
        if not self.agent.connected:
            return "offline"
        room = self.batch - len(self._inflight)
        rows = [r for r in self.events.pending(self.batch + len(self._inflight)) if r.id not in self._inflight]
        if not rows and not self._inflight:
            return "sent" if settled else "idle"
        refused = False
        for row in rows[:max(0, room)]:
            info = self.agent.send("events", row.payload(), min_qos=1)  # an acknowledgement, also under qos: 0
            if info is None:
                break  # the link went down mid-batch
            if info.rc not in _QUEUED:
                refused = True  # paho's queue is full, or the message is too large: again next round
                log.warning("fleet outbox: event %d not queued by the client (rc %s)", row.id, info.rc)
                break
            self._inflight[row.id] = (row, info, time.monotonic())
        acked = settled + self._wait_for_acks()
        return "sent" if acked and not refused else "failed"

    def _wait_for_acks(self) -> int:
        """Wait up to `ack_timeout_s` for every row in flight; mark the acknowledged ones. Returns how many."""
        deadline = time.monotonic() + self.ack_timeout_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            if all(info.is_published() for _, info, _ in self._inflight.values()):
                break
            self._stop.wait(0.005)
        return self._settle()

    def _settle(self) -> int:
        """Mark the rows whose PUBACK came back ``published``; forget those in flight too long."""
        acked = [row for row, info, _ in self._inflight.values() if info.is_published()]
        if acked:
            self.events.mark_published([row.id for row in acked])  # raises: they stay in flight, retried
            for row in acked:
                del self._inflight[row.id]
            self.published += len(acked)
            self._publish_counts(acked)
        now = time.monotonic()
        for row_id in [i for i, (_, _, sent) in self._inflight.items() if now - sent > self.resend_after_s]:
            del self._inflight[row_id]  # sent again next round: the consumer dedupes on event_id
        return len(acked)

    def _publish_counts(self, rows: list[EventRow]) -> None:
        for camera in sorted({row.camera for row in rows if row.camera is not None}):
            counts = {"camera": camera, **self.events.counts(camera), "time": time.time()}
            self.agent.send(f"counts/{_TOPIC_UNSAFE.sub('_', camera)}", counts, retain=True, min_qos=1)
