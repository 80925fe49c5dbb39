"""`SnapshotWriter`: the event snapshot callable the apps get: JPEG with the box drawn, atomic, under a
quota oldest first, adopted after a restart; a full disk (a real tmpfs, or ENOSPC injected at the durable
write) returns None and counts it, the event is still journaled, and snapshots resume when space is back."""
from __future__ import annotations

import errno
import logging
import subprocess

import cv2
import numpy as np
import pytest
from disk import tmpfs  # noqa: F401 - a fixture

from edgert.core import durable
from edgert.core.errors import ConfigError, FrameError
from edgert.journal import EventLog, SnapshotWriter
from edgert.pipeline.app import Events
from edgert.service.events import EventRecorder

SEED = 20261202


def noise(h=240, w=320, seed=0) -> np.ndarray:
    """Noise compresses badly: JPEGs of a predictable, sizeable size (about 60 kB here)."""
    return np.random.default_rng([SEED, seed]).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_the_box_is_drawn_and_the_path_is_relative_to_the_state_dir(tmp_path):
    frame = np.full((120, 160, 3), 40, np.uint8)
    writer = SnapshotWriter(tmp_path, quality=95)
    rel = writer.write(frame, [20.4, 30, 100, 90], "front/track 7:zone_enter")
    assert rel is not None and rel.startswith("snapshots/events/") and rel.endswith("-front_track_7_zone_enter.jpg")
    image = cv2.imread(str(tmp_path / rel))
    assert image.shape == frame.shape
    green = (image[..., 1].astype(int) - image[..., 2]) > 100
    ys, xs = np.nonzero(green)
    assert (xs.min(), ys.min(), xs.max(), ys.max()) == pytest.approx((19, 29, 101, 91), abs=2)  # the rectangle
    assert not green[50:70, 50:70].any() and (frame == 40).all()  # inside empty; the caller's frame untouched
    assert not [p for p in (tmp_path / "snapshots" / "events").iterdir() if p.name.endswith(".tmp")]
    assert writer.write(frame, None, "nobox") is not None  # no box: the picture alone
    assert writer.write(frame, [float("nan"), 0, 5, 5], "nan") is not None  # a NaN box is not drawn
    gray = writer.write(np.zeros((50, 60), np.uint8), [0, 0, 300, 300], "gray")  # clipped to the picture
    assert cv2.imread(str(tmp_path / gray)).shape == (50, 60, 3)
    assert writer.stats()["written"] == 4 and writer.stats()["errors"] == 0


@pytest.mark.parametrize("frame,box,message", [
    (np.zeros((10, 10, 3), np.float32), None, "uint8 BGR"),
    (np.zeros((10, 10, 4), np.uint8), None, "uint8 BGR"),
    ("frame", None, "got str"),
    (np.zeros((10, 10, 3), np.uint8), [1, 2, 3], "four numbers"),
    (np.zeros((10, 10, 3), np.uint8), "box", "four numbers"),
])
def test_bad_frames_and_boxes_are_refused_in_one_line(tmp_path, frame, box, message):
    writer = SnapshotWriter(tmp_path)
    with pytest.raises(FrameError, match=message) as err:
        writer.write(frame, box, "x")
    assert "\n" not in str(err.value) and writer.count == 0


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="outside the state directory"):
        SnapshotWriter(tmp_path / "state", directory=tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="must be positive"):
        SnapshotWriter(tmp_path, max_bytes=0)
    with pytest.raises(ConfigError, match="1-100"):
        SnapshotWriter(tmp_path, quality=0)


def test_quota_keeps_the_newest_and_a_restart_adopts_the_files(tmp_path):
    writer = SnapshotWriter(tmp_path, max_bytes=300_000)
    paths = [writer.write(noise(seed=i), [10, 10, 100, 100], f"e{i}") for i in range(12)]
    assert all(paths)
    directory = tmp_path / "snapshots" / "events"
    on_disk = sorted(p.name for p in directory.iterdir())
    size = sum(p.stat().st_size for p in directory.iterdir())
    assert size == writer.total_bytes <= 300_000 and writer.evicted == 12 - len(on_disk) > 0
    assert on_disk == sorted(p.rsplit("/", 1)[1] for p in paths[-len(on_disk):])  # the oldest went first
    assert writer.write(noise(1000, 1000, seed=99), None, "huge") is None and writer.over_quota == 1
    again = SnapshotWriter(tmp_path, max_bytes=150_000)  # a restart with a smaller quota trims at once
    assert again.total_bytes <= 150_000 and again.count == len(list(directory.iterdir()))
    assert sorted(p.name for p in directory.iterdir()) == on_disk[-again.count:]


def test_enospc_at_the_durable_write_returns_none_and_snapshots_resume(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="edgert.journal")
    writer = SnapshotWriter(tmp_path)
    real = durable.write_bytes
    full = [True]

    def write_bytes(path, data, *args, **kwargs):
        if full[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data, *args, **kwargs)

    monkeypatch.setattr(durable, "write_bytes", write_bytes)
    assert [writer.write(noise(seed=i), [0, 0, 9, 9], f"e{i}") for i in range(3)] == [None] * 3
    assert writer.stats()["errors"] == 3 and writer.count == 0
    assert sum("counting further failures" in r.getMessage() for r in caplog.records) == 1
    full[0] = False
    assert writer.write(noise(seed=5), [0, 0, 9, 9], "back") is not None and writer.count == 1
    assert "written again" in caplog.text


def test_full_disk_on_a_real_tmpfs_events_still_journaled(tmpfs, tmp_path):
    """The app's way: snapshot first (None on a full disk), then the event with whatever came back."""
    state = tmpfs("160k")
    writer = SnapshotWriter(state, max_bytes=10 * 2**20)
    events = Events()
    recorder = EventRecorder(tmp_path / "journal.sqlite3", events)  # the journal on another disk
    for i in range(6):  # about 60 kB each: the tmpfs is full after two
        snapshot = writer.write(noise(seed=i), [5, 5, 50, 50], f"cam0-{i}")
        events.publish("zone_enter", f"person {i}", camera="cam0", track_id=i,
                       **({"snapshot": snapshot} if snapshot else {}))
    stats = writer.stats()
    assert 1 <= stats["written"] < 6 and stats["errors"] == 6 - stats["written"]
    assert not [p for p in (state / "snapshots" / "events").iterdir() if p.name.startswith(".")]
    subprocess.run(["mount", "-o", "remount,size=2m", str(state)], check=True)  # space returns
    snapshot = writer.write(noise(seed=7), [5, 5, 50, 50], "cam0-7")
    assert snapshot is not None and (state / snapshot).is_file()
    events.publish("zone_enter", "person 7", camera="cam0", track_id=7, snapshot=snapshot)
    recorder.close()
    with EventLog(tmp_path / "journal.sqlite3", read_only=True) as log:
        rows = log.query(newest_first=False)
    assert [r.track_id for r in rows] == [0, 1, 2, 3, 4, 5, 7]  # every event kept, with or without a picture
    assert sum(r.snapshot is not None for r in rows) == stats["written"] + 1 and rows[-1].snapshot == snapshot
