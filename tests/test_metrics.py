"""The Prometheus endpoint: off by default, served by the daemon for the running app (the kiosk here,
scraped over HTTP), generic over the app's stats() keys, with events by type and journal errors."""
from __future__ import annotations

import socket
import threading
import time
import urllib.request
from types import SimpleNamespace
from typing import NamedTuple

import pytest
from conftest import wait_until

pytest.importorskip("prometheus_client", reason="prometheus-client is not installed (extra: metrics)")
pytest.importorskip("cv2")
from gpiozero.pins.mock import MockFactory, MockPWMPin  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from test_kiosk import config_text, digit_scene  # noqa: E402

from edgert.core.config_file import parse_text  # noqa: E402
from edgert.core.errors import ConfigError  # noqa: E402
from edgert.pipeline.app import AppHealth  # noqa: E402
from edgert.service.config import file_model  # noqa: E402
from edgert.service.daemon import Daemon  # noqa: E402
from edgert.service.metrics import MetricsConfig, MetricsServer  # noqa: E402
from edgert.service.notify import Notifier  # noqa: E402
from edgert.sources.base import SourceHealth  # noqa: E402

KioskFile = file_model("kiosk")


def scrape(port: int) -> dict[str, list]:
    """``{family name: [(sample name, labels, value)]}`` from ``GET /metrics``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {f.name: [(s.name, s.labels, s.value) for s in f.samples] for f in text_string_to_metric_families(text)}


def value(families, family, sample=None, **labels):
    for name, have, v in families.get(family, []):
        if (sample is None or name == sample) and all(have.get(k) == w for k, w in labels.items()):
            return v
    raise KeyError(f"{family} {labels} not in {families.get(family)}")


def test_metrics_are_off_by_default_and_validated(tmp_path):
    text = config_text(tmp_path / "frames", tmp_path / "state")
    assert parse_text(text, KioskFile).metrics is None
    on = parse_text(text + "metrics: {port: 9200, host: 127.0.0.1}\n", KioskFile).metrics
    assert (on.port, on.host) == (9200, "127.0.0.1")
    assert parse_text(text + "metrics: {}\n", KioskFile).metrics.port == 9100
    with pytest.raises(ConfigError, match=r"metrics\.prot"):
        parse_text(text + "metrics: {prot: 9100}\n", KioskFile)
    with pytest.raises(ConfigError, match=r"metrics\.port"):
        parse_text(text + "metrics: {port: 70000}\n", KioskFile)


def test_the_kiosk_scraped_over_http(tmp_path):
    digit_scene(tmp_path / "frames", 6)
    text = config_text(tmp_path / "frames", tmp_path / "state", source=", loop: true, fps: 100",
                       service=", status_interval_s: 0.2") + "metrics: {port: 0, host: 127.0.0.1}\n"
    pins = MockFactory(pin_class=MockPWMPin)
    daemon = Daemon(None, notifier=Notifier({}), config=parse_text(text, KioskFile), pin_factory=pins)
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        assert wait_until(lambda: daemon.app is not None and daemon.app.items >= 2 and daemon.metrics is not None, 30)
        daemon.app.context.events.publish("zone_enter", "a test event", camera="cam0", track_id=1)
        assert daemon.recorder.flush(10)
        port, generation = daemon.metrics.port, daemon.app.slot.current.generation
        first = scrape(port)
        time.sleep(0.3)
        second = scrape(port)
    finally:
        daemon.request_stop()
        runner.join(30)
        pins.close()
    assert value(first, "edgert_up") == 1 and value(first, "edgert_frames") > 0
    assert value(first, "edgert_stream_state", stream=daemon.app.source.name, state="ok") == 1
    assert value(first, "edgert_stages_processed", stage="infer") > 0  # generic over stats()["stages"]
    assert value(first, "edgert_items") >= 2 and value(first, "edgert_journal_errors") == 0
    assert value(first, "edgert_events", "edgert_events_total", kind="zone_enter") == 1  # events by type
    assert value(first, "edgert_model_generation", slot="classifier", backend="cpu") == generation
    p50 = value(first, "edgert_stage_latency_ms", stage="infer", quantile="0.5")
    assert p50 > 0
    count = value(first, "edgert_stage_latency_seconds", "edgert_stage_latency_seconds_count", stage="infer")
    inf = value(first, "edgert_stage_latency_seconds", "edgert_stage_latency_seconds_bucket", stage="infer", le="+Inf")
    assert count == inf > 0
    assert value(second, "edgert_stage_latency_seconds", "edgert_stage_latency_seconds_count", stage="infer") > count
    busy = value(second, "edgert_device_busy_ratio", stage="infer")  # between the two scrapes
    assert 0 < busy <= 1
    assert daemon.metrics is None  # closed with the app: nothing listens on the port any more
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


class StreamStats(NamedTuple):
    fps: float
    dropped: int
    tracks: int


class FakeApp:
    """An app of the future (the surveillance one): streams and slots of its own in stats()."""

    def __init__(self):
        self.running = True

    def health(self):
        return AppHealth(self.running, 120, 1, {"front": SourceHealth("ok"),
                                                "gate": SourceHealth("reconnecting", reconnects=2, failures=3)})

    def stats(self):
        return {"elapsed_s": 4.0, "snapshot_errors": 3, "device_busy": {"hailo0": 0.97},
                "streams": {"front": {"fps": 29.5, "dropped": 4, "tracks": 7, "state": "ok"},
                            "gate": StreamStats(5.0, 0, 0)},
                "tracks": {"person": 5, "car": 2}, "latency_ms": {}, "latency_histogram": {}}

    def models(self):
        return {}


def test_generic_over_an_apps_stats_keys(tmp_path):
    app = FakeApp()
    recorder = SimpleNamespace(recorded={"line_cross": 4, "zone_enter": 2}, errors=1)
    server = MetricsServer(MetricsConfig(port=0, host="127.0.0.1"), lambda: app, lambda: recorder, lambda: None)
    try:
        got = scrape(server.port)
        app.running = False
        down = scrape(server.port)
    finally:
        server.close()
        server.close()  # idempotent
    assert value(got, "edgert_streams_fps", stream="front") == 29.5
    assert value(got, "edgert_streams_fps", stream="gate") == 5.0
    assert value(got, "edgert_streams_dropped", stream="front") == 4
    assert value(got, "edgert_streams_tracks", stream="front") == 7
    assert value(got, "edgert_tracks", key="person") == 5 and value(got, "edgert_tracks", key="car") == 2
    assert value(got, "edgert_device_busy", key="hailo0") == 0.97
    assert value(got, "edgert_snapshot_errors") == 3
    assert value(got, "edgert_stream_state", stream="gate", state="reconnecting") == 1
    assert value(got, "edgert_stream_reconnects", stream="gate") == 2
    assert value(got, "edgert_events", "edgert_events_total", kind="line_cross") == 4
    assert value(got, "edgert_journal_errors", "edgert_journal_errors_total") == 1
    assert value(down, "edgert_up") == 0


def test_a_taken_port_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"metrics: cannot listen on 127.0.0.1:{port}") as err:
            MetricsServer(MetricsConfig(port=port, host="127.0.0.1"), lambda: None, lambda: None, lambda: None)
    assert "\n" not in str(err.value)


def test_stage_histogram_counts_every_duration_in_its_bucket():
    import numpy as np

    from edgert.pipeline.timing import LATENCY_BUCKETS_MS, StageTimes

    seed = 20261202
    rng = np.random.default_rng(seed)
    durations = {"infer": rng.lognormal(1.5, 1.2, 3000), "decode": rng.uniform(0, 3, 500)}  # ms
    times = StageTimes(("capture", "infer", "decode"), window=256)  # the window is smaller: counts are not
    for stage, ms in durations.items():
        for d in ms:
            times.add(stage, int(d * 1e6))
    durations["infer"] = np.append(durations["infer"], LATENCY_BUCKETS_MS[3])  # on a bound: in that bucket
    times.add("infer", int(LATENCY_BUCKETS_MS[3] * 1e6))
    got = times.histogram()
    assert set(got) == {"infer", "decode"}, seed  # a stage with no duration has no histogram
    for stage, ms in durations.items():
        ns = (ms * 1e6).astype(np.int64)
        want = [int((ns <= int(b * 1e6)).sum()) for b in LATENCY_BUCKETS_MS] + [len(ns)]
        assert got[stage]["counts"] == want, seed
        assert got[stage]["sum_ms"] == pytest.approx(ns.sum() / 1e6), seed
