"""The Prometheus endpoint (``metrics: {port: 9100}``, off by default), served by the daemon for any app.

Everything is read at scrape time, from what the service already has, into a private
``CollectorRegistry`` (nothing global, nothing per frame):

- the app's `stats()`, generically, so an app's own counters appear without code here: a number at the
  top becomes ``edgert_<key>``; a dict of numbers ``edgert_<key>{key=...}``; a dict of dicts (or of
  NamedTuples/dataclasses) ``edgert_<key>_<field>{<label>=...}`` with the label ``stage`` for
  ``stages``, ``stream`` for ``streams`` (per-stream fps and drops), ``slot`` for ``slots`` and
  ``name`` otherwise. ``latency_ms`` (percentiles) becomes ``edgert_stage_latency_ms{stage, quantile}``
  and ``latency_histogram`` the histogram ``edgert_stage_latency_seconds{stage}``;
- the app's `health()`: ``edgert_up``, frames, and per stream ``edgert_stream_state{stream, state}``,
  reconnects and failures;
- the app's `models()`: ``edgert_model_generation{slot, model, version, backend}``;
- device busy: ``edgert_device_busy_ratio{stage}``, the time the ``infer*`` stages spent per wall
  second between two scrapes (at most 1; with several frames in flight on an asynchronous backend it
  is an upper bound). An app whose stats carry ``device_busy`` gets that exported as well;
- the journal: ``edgert_events_total{kind}`` (events journaled by type), ``edgert_journal_errors_total``,
  and the outbox's published, retries, errors and backlog; snapshot errors come with the app's stats
  (an app puts `SnapshotWriter.stats()` under a key of its stats, e.g. ``snapshots``).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import re
import time
from collections.abc import Callable

from pydantic import Field

from edgert.core.errors import BackendUnavailable, ConfigError, EdgertError, one_line
from edgert.core.settings import Section

log = logging.getLogger(__name__)

_LABELS = {"stages": "stage", "streams": "stream", "slots": "slot", "cameras": "camera"}
_SPECIAL = {"latency_ms", "latency_histogram"}
_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_]+")
_QUANTILES = {"p50": "0.5", "p90": "0.9", "p99": "0.99", "max": "1"}


class MetricsConfig(Section):
    """The ``metrics:`` section: a Prometheus endpoint on ``http://<host>:<port>/metrics``."""

    port: int = Field(9100, ge=0, le=65535, description="TCP port (0: any free one, for tests)")
    host: str = Field("0.0.0.0", min_length=1, description="Address to listen on (127.0.0.1: this device only)")


def _load_prometheus():
    try:
        import prometheus_client
    except ImportError as exc:
        raise BackendUnavailable("metrics: prometheus-client is not installed (pip install 'edgert[metrics]') "
                                 "or remove the metrics: section") from exc
    return prometheus_client


class _Collector:
    """A custom collector: builds every family from the app and the service at each scrape."""

    def __init__(self, app: Callable, recorder: Callable, updates: Callable):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        self._gauge, self._counter, self._histogram = GaugeMetricFamily, CounterMetricFamily, HistogramMetricFamily
        self._app, self._recorder, self._updates = app, recorder, updates
        self._last_busy: dict[str, tuple[float, float]] = {}  # stage -> (wall s, summed stage ms)

    def describe(self):
        return []  # families are only known at scrape time

    def collect(self):
        app = self._app()
        up = self._gauge("edgert_up", "1 while the app's stage threads run")
        if app is None:
            up.add_metric([], 0)
            yield up
            return
        try:
            health, stats, models = app.health(), app.stats(), app.models()
        except Exception as exc:  # noqa: BLE001 - a scrape reports what went wrong instead of failing
            log.warning("metrics: the app's stats failed: %s", one_line(exc))
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1 if health.running else 0)
        yield up
        yield from self._health(health)
        yield from self._stats(stats)
        yield from self._models(models)
        yield from self._busy(stats.get("latency_histogram") or {})
        yield from self._journal()

    def _health(self, health):
        frames = self._gauge("edgert_frames", "Frames fully processed since the app started")
        frames.add_metric([], health.frames)
        yield frames
        state = self._gauge("edgert_stream_state", "1 for the state each stream is in", labels=["stream", "state"])
        reconnects = self._gauge("edgert_stream_reconnects", "Reopenings after a failure", labels=["stream"])
        failures = self._gauge("edgert_stream_failures", "Consecutive failed attempts", labels=["stream"])
        for name, h in health.streams.items():
            state.add_metric([str(name), str(h.state)], 1)
            reconnects.add_metric([str(name)], h.reconnects)
            failures.add_metric([str(name)], h.failures)
        yield from (state, reconnects, failures)

    def _stats(self, stats: dict):
        for key, value in stats.items():
            if key in _SPECIAL:
                continue
            yield from self._generic(_metric_name(key), key, value)
        yield from self._percentiles(stats.get("latency_ms") or {})
        yield from self._histograms(stats.get("latency_histogram") or {})

    def _generic(self, name: str, key: str, value):
        number = _number(value)
        if number is not None:
            g = self._gauge(f"edgert_{name}", f"stats()[{key!r}]")
            g.add_metric([], number)
            yield g
            return
        value = _as_dict(value)
        if not value:
            return
        numbers = {k: _number(v) for k, v in value.items()}
        if any(n is not None for n in numbers.values()):
            g = self._gauge(f"edgert_{name}", f"stats()[{key!r}][key]", labels=["key"])
            for k, n in numbers.items():
                if n is not None:
                    g.add_metric([str(k)], n)
            yield g
        rows = {k: _as_dict(v) for k, v in value.items() if numbers[k] is None}
        fields = sorted({f for row in rows.values() for f, v in row.items() if _number(v) is not None})
        label = _LABELS.get(key, "name")
        for field in fields:
            g = self._gauge(f"edgert_{name}_{_metric_name(field)}", f"stats()[{key!r}][{label}][{field!r}]",
                            labels=[label])
            for k, row in rows.items():
                n = _number(row.get(field))
                if n is not None:
                    g.add_metric([str(k)], n)
            yield g

    def _percentiles(self, latency: dict):
        g = self._gauge("edgert_stage_latency_ms", "Recent per-stage latency percentiles (ms)",
                        labels=["stage", "quantile"])
        for stage, row in latency.items():
            for key, quantile in _QUANTILES.items():
                if _number(row.get(key)) is not None:
                    g.add_metric([str(stage), quantile], row[key])
        yield g

    def _histograms(self, histograms: dict):
        h = self._histogram("edgert_stage_latency_seconds", "Per-stage latency since the start", labels=["stage"])
        for stage, row in histograms.items():
            buckets = [(f"{b / 1000:g}", c) for b, c in zip(row["le_ms"], row["counts"])]
            buckets.append(("+Inf", row["counts"][-1]))
            h.add_metric([str(stage)], buckets, row["sum_ms"] / 1000)
        yield h

    def _models(self, models: dict):
        g = self._gauge("edgert_model_generation", "Generation of the model each slot runs (rises at every swap)",
                        labels=["slot", "model", "version", "backend"])
        for slot, entry in models.items():
            g.add_metric([str(slot), str(entry.name), str(entry.version), str(entry.model.backend)], entry.generation)
        yield g

    def _busy(self, histograms: dict):
        g = self._gauge("edgert_device_busy_ratio", "Infer-stage time per wall second since the previous scrape",
                        labels=["stage"])
        now = time.monotonic()
        for stage, row in histograms.items():
            if not str(stage).startswith("infer"):
                continue
            last = self._last_busy.get(stage)
            self._last_busy[stage] = (now, row["sum_ms"])
            if last is not None and now > last[0]:
                g.add_metric([str(stage)], min(1.0, (row["sum_ms"] - last[1]) / 1000 / (now - last[0])))
        yield g

    def _journal(self):
        recorder, updates = self._recorder(), self._updates()
        events = self._counter("edgert_events", "Events journaled, by type", labels=["kind"])
        errors = self._counter("edgert_journal_errors", "Events that could not be journaled")
        if recorder is not None:
            for kind, n in sorted(recorder.recorded.items()):
                events.add_metric([kind], n)
            errors.add_metric([], recorder.errors)
        yield from (events, errors)
        outbox = getattr(updates, "outbox", None)
        if outbox is not None:
            for field, text in (("published", "Events the broker acknowledged"),
                                ("retries", "Outbox rounds retried"), ("errors", "Outbox failures")):
                c = self._counter(f"edgert_outbox_{field}", text)
                c.add_metric([], getattr(outbox, field))
                yield c
            backlog = self._gauge("edgert_outbox_backlog", "Journaled events the broker has not acknowledged")
            try:
                backlog.add_metric([], outbox.backlog())
            except EdgertError:  # the journal closed under a rebuild: this scrape has no backlog
                pass
            yield backlog


def _metric_name(key) -> str:
    return _NAME_UNSAFE.sub("_", str(key)).strip("_").lower() or "value"


def _number(value) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    if hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0:
        return _number(value.item())  # a numpy scalar
    return None


def _as_dict(value) -> dict:
    if isinstance(value, dict):
        return value
    if hasattr(value, "_asdict"):
        return value._asdict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return {}


class MetricsServer:
    """The endpoint's HTTP server thread over a private registry.

    Args:
        config: The ``metrics:`` section.
        app: Returns the running app (or None between rebuilds).
        recorder: Returns the `EventRecorder` (or None).
        updates: Returns the service's `Updates` (its ``outbox``), or None.

    Raises:
        BackendUnavailable: prometheus-client is not installed.
        ConfigError: The port cannot be bound (in use, or a privileged port).
    """

    def __init__(self, config: MetricsConfig, app: Callable, recorder: Callable, updates: Callable):
        prometheus = _load_prometheus()
        self.registry = prometheus.CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(app, recorder, updates))
        try:
            self._server, self._thread = prometheus.start_http_server(config.port, config.host, self.registry)
        except OSError as exc:
            raise ConfigError(f"metrics: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
        self.port = self._server.server_address[1]
        log.info("metrics on http://%s:%d/metrics", config.host, self.port)

    def close(self) -> None:
        """Stop serving and free the port. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            self._thread.join(5)
