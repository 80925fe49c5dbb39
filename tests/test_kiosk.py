"""The kiosk end to end: real images from a folder, a real int8 model, real policy, gpiozero mock pins, real journal.

The scene is scikit-learn's held-out digits, each shown for several frames between blank frames
(an item passing under the camera), so presence, voting, firing and journaling all run for real
and every decision can be checked against the digit shown.
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
from gpiozero.pins.mock import MockFactory, MockPWMPin  # noqa: E402

from edgert.apps.kiosk.app import Kiosk  # noqa: E402
from edgert.core.config_file import parse_text  # noqa: E402
from edgert.core.errors import ConfigError, ModelError  # noqa: E402
from edgert.models.resolve import model_loader  # noqa: E402
from edgert.pipeline.app import AppContext  # noqa: E402
from edgert.service.config import file_model  # noqa: E402

KioskFile = file_model("kiosk")  # a whole config file: the kiosk's sections and the service's


def make_kiosk(config, **options) -> Kiosk:
    """A kiosk with the context the service would give it (no model store)."""
    context = AppContext(config.service.state_dir, config.service.infer_depth, model_loader())
    return Kiosk(config, context, **options)

DATA = Path(__file__).parent / "data"
ITEM_FRAMES, GAP_FRAMES = 6, 4


def digit_scene(folder: Path, count: int, start: int = 0) -> list[int]:
    """Write blank/digit/blank... PNG frames; returns the digits shown, in order."""
    d = np.load(DATA / "digits_test.npz")
    images, labels = d["images"], d["labels"]
    folder.mkdir(parents=True, exist_ok=True)
    blank = np.zeros((64, 64, 3), np.uint8)
    n, shown = 0, []

    def write(img):
        nonlocal n
        cv2.imwrite(str(folder / f"{n:05d}.png"), img)
        n += 1

    for _ in range(GAP_FRAMES):
        write(blank)
    for i in range(start, start + count):
        big = cv2.resize(images[i], (64, 64), interpolation=cv2.INTER_NEAREST)
        for _ in range(ITEM_FRAMES):
            write(cv2.cvtColor(big, cv2.COLOR_GRAY2BGR))
        for _ in range(GAP_FRAMES):
            write(blank)
        shown.append(int(labels[i]))
    return shown


def config_text(folder: Path, state: Path, **extra) -> str:
    text = f"""
source: {{kind: folder, path: {folder}{extra.get('source', '')}}}
model:
  path: {DATA / 'digits_int8.tflite'}
  backend: cpu
  labels: ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
  preprocess: {{resize: stretch, interpolation: area, std: 255}}
presence: {{kind: frame_diff, rise_frames: 1, fall_frames: 2, step: 4}}
policy:
  bins: {{"0": even, "2": even, "4": even, "6": even, "8": even, "1": odd, "3": odd, "5": odd, "7": odd}}
  votes: 3
  min_confidence: 0.3
  min_agreement: 0.6
actuators:
  pin_factory: mock
  conveyor_delay_s: {extra.get('delay', 0.05)}
  devices:
    - {{kind: servo, name: flap, pin: 18, angles: {{even: -45, odd: 45}}, safe_angle: 0, hold_s: 0.05}}
    - kind: relay
      name: jet
      channels: {{reject: {{pin: 23, pulse_s: 0.02}}}}
journal: {{snapshots: {str(extra.get('snapshots', False)).lower()}}}
service: {{state_dir: {state}, infer_depth: 1{extra.get('service', '')}}}
"""
    return text


def timeline(pin, base: float) -> list:
    """(absolute monotonic seconds, state) of a mock pin's changes since `clear_states` at `base`."""
    t, out = base, []
    for change in list(pin.states)[1:]:
        t += change.timestamp
        out.append((t, change.state))
    return out


@pytest.fixture
def pins():
    factory = MockFactory(pin_class=MockPWMPin)
    yield factory
    factory.close()


def all_fired(kiosk, outcomes, timeout: float = 30.0) -> bool:
    """Wait until every decided item's firing has run (or failed): the scheduler runs them on its own time."""
    deadline = time.monotonic() + timeout
    while kiosk.stats()["fired"] + kiosk.stats()["errors"] < len(outcomes):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def run_kiosk(config, pins, **kwargs) -> tuple[Kiosk, list]:
    outcomes = []
    kiosk = make_kiosk(config, listener=outcomes.append, pin_factory=pins, **kwargs)
    kiosk.start()
    assert kiosk.graph.join(60)
    assert all_fired(kiosk, outcomes)
    return kiosk, outcomes


def test_items_are_sorted_fired_and_journaled(tmp_path, pins):
    shown = digit_scene(tmp_path / "frames", 12)
    config = parse_text(config_text(tmp_path / "frames", tmp_path / "state", snapshots=True, source=", fps: 60"),
                        KioskFile)
    kiosk, outcomes = run_kiosk(config, pins)
    try:
        decisions = [o.decision for o in outcomes]
        assert len(decisions) == len(shown)  # one decision per item, none for the gaps
        correct = sum(d.label == str(t) for d, t in zip(decisions, shown))
        assert correct >= 11  # the model's held-out accuracy is 0.97
        for d, t in zip(decisions, shown):
            if d.reason == "ok":
                assert d.bin == ("odd" if int(d.label) % 2 else "even")
            else:
                assert d.bin == "reject"
            if d.label == "9":  # not in the bin map
                assert d.bin == "reject"
        stats = kiosk.stats()
        assert stats["errors"] == 0 and stats["journal_errors"] == 0
        assert stats["fired"] == len(decisions)
        latency = stats["latency_ms"]
        assert {"capture", "preprocess", "infer", "decode", "decide", "actuate"} <= set(latency)
    finally:
        kiosk.close()

    # the servo went to each sorted bin's angle and back to safe; the relay pulsed for rejects
    flap = pins.pin(18)
    duties = {round(s.state, 4) for s in flap.states if s.state}
    expected = {round((0.0015 + angle / 90 * 0.0005) / 0.02, 4) for angle in (-45, 45, 0)}
    used = {round((0.0015 + {"even": -45, "odd": 45}[d.bin] / 90 * 0.0005) / 0.02, 4)
            for d in decisions if d.bin != "reject"}
    assert used and used <= duties <= expected
    jet_pulses = sum(1 for a, b in zip(pins.pin(23).states, pins.pin(23).states[1:]) if not a.state and b.state)
    rejects = sum(d.bin == "reject" for d in decisions)
    # a reject fired while the previous one's pulse still runs (its blink thread stalled) restarts it: one pulse
    assert (rejects > 0) <= jet_pulses <= rejects

    with sqlite3.connect(tmp_path / "state" / "journal.sqlite3") as db:
        rows = db.execute("SELECT item, label, bin, actuation, latency_ms, truth, snapshot FROM decisions "
                          "ORDER BY id").fetchall()
    assert [r[0] for r in rows] == [d.item for d in decisions]
    assert [r[2] for r in rows] == [d.bin for d in decisions]
    assert all(r[3] not in ("pending", None) and not r[3].startswith("error") for r in rows)
    assert all('"infer"' in r[4] for r in rows)
    assert any(r[6] for r in rows)  # snapshots kept


def test_firing_waits_for_the_conveyor_delay_counted_from_capture(tmp_path, pins):
    digit_scene(tmp_path / "frames", 3)
    # paced like a camera, so items are apart in time and the flap returns to safe between them
    config = parse_text(config_text(tmp_path / "frames", tmp_path / "state", delay=0.4, source=", fps: 60"),
                        KioskFile)
    decided = []
    kiosk = make_kiosk(config, listener=decided.append, pin_factory=pins)
    scheduled = []
    schedule = kiosk.firing.schedule
    kiosk.firing.schedule = lambda bin_, capture_ns, token=None: (scheduled.append((bin_, capture_ns)),
                                                                  schedule(bin_, capture_ns, token))[1]
    bases = {}
    for n in (18, 23):
        pins.pin(n).clear_states()
        bases[n] = pins.pin(n)._last_change  # MockPin's own monotonic() reading at clear_states
    kiosk.start()
    assert kiosk.graph.join(30)
    assert all_fired(kiosk, decided)
    kiosk.close()
    # each firing is scheduled from the item's first frame (the scheduler adds the conveyor delay), not
    # from when it was decided; how late the firing then runs depends on the machine's load
    assert scheduled == [(o.decision.bin, o.decision.capture_ns) for o in decided] and decided
    moves = [t for t, state in timeline(pins.pin(18), bases[18]) if state and abs(state - 0.075) > 1e-6]
    moves += [t for t, state in timeline(pins.pin(23), bases[23]) if state]  # reject pulses
    # and none runs before its item reaches the diverter: each firing moves a pin at most once (twice the
    # same bin while the flap still holds moves nothing), so before the k-th due time there are < k moves
    dues = sorted(o.decision.capture_ns / 1e9 + 0.4 for o in decided)
    assert 0 < len(moves) <= len(dues)
    assert all(sum(t < due - 0.002 for t in moves) <= k for k, due in enumerate(dues)), (dues, sorted(moves))


def test_bin_map_naming_a_class_the_model_lacks_is_refused(tmp_path, pins):
    digit_scene(tmp_path / "frames", 1)
    text = config_text(tmp_path / "frames", tmp_path / "state").replace('"8": even,', '"8": even, "ten": odd,')
    config = parse_text(text, KioskFile)
    threads = threading.active_count()
    with pytest.raises(ConfigError, match="'ten' are not in the model"):
        make_kiosk(config, pin_factory=pins)
    # nothing was left open: no thread behind, the journal closed, the pins free for the next try
    assert threading.active_count() == threads
    kiosk = make_kiosk(parse_text(config_text(tmp_path / "frames", tmp_path / "state"), KioskFile), pin_factory=pins)
    kiosk.close()


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 1 MB tmpfs (root only), unmounted at teardown."""
    where = tmp_path / "disk"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; test_journal covers disk full with SQLite's page limit")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(disk: Path) -> None:
    """Write a file until the disk has no byte left."""
    with open(disk / "filler", "wb", buffering=0) as f:
        for block in (65536, 4096, 1):
            try:
                while True:
                    f.write(b"\0" * block)
            except OSError:
                pass


def test_disk_full_still_actuates_reports_and_corrupts_nothing(tmp_path, tiny_disk, pins):
    shown = digit_scene(tmp_path / "frames", 4)
    config = parse_text(config_text(tmp_path / "frames", tiny_disk, source=", fps: 60"), KioskFile)
    outcomes = []
    kiosk = make_kiosk(config, listener=outcomes.append, pin_factory=pins)
    fill(tiny_disk)
    kiosk.start()
    assert kiosk.graph.join(30)
    assert all_fired(kiosk, outcomes)
    stats = kiosk.stats()
    kiosk.close()
    assert len(outcomes) == len(shown)
    assert stats["journal_errors"] >= len(shown)
    assert all(o.journal_row is None for o in outcomes)
    # every item still moved the flap away from safe or pulsed the reject jet
    moves = [s for s in pins.pin(18).states[1:] if s.state and abs(s.state - 0.075) > 1e-6]
    moves += [s for s in pins.pin(23).states[1:] if s.state]
    assert len(moves) >= len(outcomes)
    assert stats["fired"] == len(outcomes)
    (tiny_disk / "filler").unlink()  # space returns: the journal is intact and opens again
    with sqlite3.connect(tiny_disk / "journal.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT count(*) FROM decisions").fetchone()[0] == 0


def test_model_swap_mid_stream_loses_no_frame_and_no_decision(tmp_path, pins):
    shown = digit_scene(tmp_path / "frames", 8)
    config = parse_text(config_text(tmp_path / "frames", tmp_path / "state", source=", fps: 100"), KioskFile)
    outcomes = []
    kiosk = make_kiosk(config, listener=outcomes.append, pin_factory=pins)
    old = kiosk.model
    kiosk.start()
    deadline = time.monotonic() + 20
    while kiosk.frames_decided < 30 and time.monotonic() < deadline:  # well inside the stream
        time.sleep(0.01)
    new = kiosk.swap_model(Kiosk.SLOT, config.model.model_copy(update={"version": "2"}))
    assert kiosk.graph.join(30)
    stats = kiosk.stats()
    kiosk.close()
    frames = len(list((tmp_path / "frames").glob("*.png")))
    assert stats["frames_decided"] == frames  # every frame ran and was decided, across the swap
    assert stats["stages"]["infer"]["errors"] == 0 and stats["errors"] == 0
    assert len(outcomes) == len(shown)  # no item lost
    versions = {o.decision.item: o for o in outcomes}
    assert sorted(versions) == list(range(len(shown)))
    assert new.generation == old.generation + 1 and old.model.closed and new.model.closed
    assert kiosk.model_health(Kiosk.SLOT)[new.generation].frames > 0


def test_unreadable_model_fails_cleanly(tmp_path, pins):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"TFL3" + bytes(100))
    digit_scene(tmp_path / "frames", 1)
    text = config_text(tmp_path / "frames", tmp_path / "state").replace(str(DATA / "digits_int8.tflite"), str(bad))
    with pytest.raises(ModelError, match="bad.tflite"):
        make_kiosk(parse_text(text, KioskFile), pin_factory=pins)


def test_a_firing_cancelled_by_the_safe_state_is_journaled_with_one_prefix(tmp_path, pins):
    from edgert.journal import DecisionRecord

    digit_scene(tmp_path / "frames", 1)
    kiosk = make_kiosk(parse_text(config_text(tmp_path / "frames", tmp_path / "state"), KioskFile), pin_factory=pins)
    try:
        row = kiosk.journal.record(DecisionRecord(1, 1, time.time_ns(), "m", "1", "3", (("3", 0.9),), "odd",
                                                  "vote", {}, None, None))
        kiosk.firing.schedule("odd", time.monotonic_ns() + 60 * 10**9, token=row)  # an item on its way
        kiosk.safe("stop")
        assert kiosk.journal.recent(1)[0]["actuation"] == "cancelled: stop"
    finally:
        kiosk.close()
