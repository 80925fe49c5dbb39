"""`edgert demo surveillance`: the surveillance app on a rendered street, scored against its ground truth.

Only the cameras are stand-ins (`edgert.sources.street`: several viewpoints of one seeded world, the
truth of every frame in its ``meta``). The detector (an int8 model the project trained on that scene,
shipped in the package) runs on the CPU backend; the fair scheduler, the trackers, the zone and line
analytics, the events and the service around them are the ones a device runs. The summary scores the
run against the truth (`edgert.cli.demo_scoring`): per-camera fps, line counts per class and direction,
zone events found against true, ID switches, and latency per stage.
"""
from __future__ import annotations

import bisect
import importlib.util
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from importlib import resources
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from edgert.cli import demo_outputs
from edgert.cli.demo_scoring import (LINE_TOLERANCE_S, ZONE_TOLERANCE_S, CameraTruth, IdSwitches, ScoredEvent,
                                     TrackResults, line_directions, score_events)
from edgert.core.errors import ConfigError
from edgert.service.config import parse_config
from edgert.service.daemon import Daemon
from edgert.service.notify import Notifier
from edgert.sources.street import VIEWPOINTS, detectable
from edgert.sources.street_view import Camera

DEFAULT_SEED = 7

#: The eight model roles of the product plan and what runs each of them in this demo.
MODEL_ROLES = (
    ("person detection", "street_detector int8 (class person) on the {backend} backend"),
    ("vehicle detection", "street_detector int8 (classes car, bus, motorbike), the same model and pass"),
    ("vehicle classification", "builtin:vehicle_type int8 on the cpu backend, a secondary on vehicle crops (once "
                               "per track, its largest view) + the colour rule: the vehicle_attributes event"),
    ("traffic analysis", "analytics over the vehicle tracks: line counts per class and direction, speed from "
                         "the camera's homography (no network)"),
    ("behaviour analysis", "analytics over the person tracks: zone enter / exit / dwell / loiter (no network)"),
    ("face detection", "not run: the rendered people have no faces; BlazeFace (builtin:face_detection_short_range) "
                       "runs inside person boxes as a regions detector (tests/test_surveillance_secondary.py)"),
    ("face recognition", "not run (no faces in the scene): gallery + per-track votes on the BlazeFace finds "
                         "(face_recognition:, tests/test_surveillance_readers.py)"),
    ("plate OCR", "PP-OCRv4 on the onnx backend, vehicle crops of {plate_cameras}: DB text detector (float) finds "
                  "the plate, the CTC recogniser (int8) reads it, votes per track: plate_read"),
)


def surveillance_config(state_dir: Path, cameras: int = 2, seed: int = DEFAULT_SEED, fps: float | None = None,
                        frames: int | None = None):
    """The demo's config (``edgert/examples/surveillance_demo.yaml``): its first `cameras` cameras, the
    world `seed`, the source pace `fps` (0: as fast as the app takes frames; None: the file's), `frames`
    per camera (None: endless) and the state directory.

    Raises:
        ConfigError: `cameras` not between 1 and the number the file has, or a `seed`, `fps` or `frames`
            the street source does not take.
    """
    text = (resources.files("edgert") / "examples" / "surveillance_demo.yaml").read_text(encoding="utf-8")
    config = parse_config(text, "surveillance_demo.yaml")
    if not 1 <= cameras <= len(config.cameras):
        raise ConfigError(f"--cameras: {cameras} is not between 1 and {len(config.cameras)} (the demo's street "
                          "has that many viewpoints)")
    update = {"seed": seed}
    if fps is not None:
        update["fps"] = fps
    if frames is not None:
        update["frames"] = frames
    chosen = []
    for cam in config.cameras[:cameras]:
        try:
            source = type(cam.source).model_validate({**cam.source.model_dump(), **update})
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ConfigError(f"--{first['loc'][0]}: {first['msg']} (got {first['input']})") from None
        chosen.append(cam.model_copy(update={"source": source}))
    ids = {cam.id for cam in chosen}
    secondaries = {}
    onnx = importlib.util.find_spec("onnxruntime") is not None
    for name, secondary in config.secondaries.items():  # each on the chosen cameras it names, if any
        cameras = None if secondary.cameras is None else [c for c in secondary.cameras if c in ids]
        if secondary.backend == "onnx" and not onnx:
            print(f"edgert demo surveillance: secondary {name} left out: onnxruntime is not installed "
                  "(pip install 'edgert[surveillance]')", file=sys.stderr)
        elif cameras is None or cameras:
            secondaries[name] = secondary.model_copy(update={"cameras": cameras})
    plates = config.plates if any(s.kind == "ocr" for s in secondaries.values()) else None
    return config.model_copy(update={
        "cameras": chosen, "secondaries": secondaries, "plates": plates,
        "service": config.service.model_copy(update={"state_dir": Path(state_dir)}),
    })


class _CameraScore:
    """Truth, ID switches, found events and the wall -> scene time map of one camera."""

    def __init__(self, camera_config, groups, kinds=()):
        source = camera_config.source
        self.kinds = frozenset(kinds)  # the kinds of secondaries run on this camera
        width, height = source.size
        line = camera_config.lines[0] if camera_config.lines else None
        zone = camera_config.zones[0] if camera_config.zones else None
        directions = {}
        if line is not None:
            points = np.asarray(line.points, np.float64) * (width, height)
            directions = line_directions(Camera(VIEWPOINTS[source.camera], source.size), points)
        self.height = height
        self.line_ids = [line.id] if line is not None else []
        self.zone_ids = [zone.id] if zone is not None else []
        self.truth = CameraTruth(line.id if line else None, directions, line.classes if line else (),
                                 zone.id if zone else None, zone.classes if zone else (), height)
        self.ids = IdSwitches(groups=groups)
        self.results = TrackResults(height)
        self.found: list[ScoredEvent] = []
        self.walls: list[float] = []
        self.scenes: list[float] = []

    def scene_time(self, wall: float) -> float:
        """Scene seconds of the processed frame whose wall time is nearest `wall`."""
        k = bisect.bisect_left(self.walls, wall)
        if k == len(self.walls) or (k > 0 and wall - self.walls[k - 1] < self.walls[k] - wall):
            k -= 1
        return self.scenes[k]


class DemoScore:
    """Follows the app (its `on_tracks` and `listener` hooks) and scores each camera against the truth.

    Args:
        config: The demo's config.
        wall_time: ``wall_time(monotonic_ns) -> float``: the app's capture-time clock (`Surveillance.wall_time`).
        out: Where live event lines go (None: nowhere).
    """

    LIVE_KINDS = ("line_cross", "zone_enter", "zone_exit", "loiter")

    def __init__(self, config, wall_time=None, out=None):
        groups = [g.classes for g in config.tracking.groups.values() if g.merge_classes]
        kinds = {c.id: {s.kind for s in config.secondaries.values() if s.cameras is None or c.id in s.cameras}
                 for c in config.cameras}
        self.cameras = {c.id: _CameraScore(c, groups, kinds[c.id]) for c in config.cameras}
        self.paced = all(c.source.fps > 0 for c in config.cameras)
        self.wall_time = wall_time
        self.out = out
        self.events: Counter = Counter()
        self.start = time.monotonic()
        self._lock = threading.Lock()

    def on_tracks(self, cam_id: str, frame, update) -> None:
        """The app's per-frame tracks of a camera (called before that frame's events)."""
        cam = self.cameras[cam_id]
        meta = frame.meta
        objects = meta["objects"]
        counted = [o for o in objects if detectable(o, cam.height)]
        ignored = [o["box"] for o in objects if not detectable(o, cam.height)]
        with self._lock:
            cam.walls.append(self.wall_time(frame.timestamp_ns))
            cam.scenes.append(float(meta["time_s"]))
            cam.truth.add_frame(float(meta["time_s"]), objects)
            cam.ids.update([o["id"] for o in counted], [o["box"] for o in counted], [o["class"] for o in counted],
                           ignored, update.ids, update.boxes, update.classes)
            cam.results.add_frame(objects, cam.ids.paired_now)

    def on_event(self, event) -> None:
        """The app's listener: keep line crossings and zone events, print them live."""
        d = event.details
        with self._lock:
            self.events[event.kind] += 1
            cam = self.cameras.get(d.get("camera"))
            if cam is not None and event.kind == "plate_read":
                cam.results.plates.append((int(d["track_id"]), d["plate"]))
            elif cam is not None and event.kind == "vehicle_attributes":
                cam.results.types.append((int(d["track_id"]), d["type"]))
            if cam is None or not cam.walls or event.kind not in ("line_cross", "zone_enter", "zone_exit"):
                found = None
            else:
                wall = d.get("t_end", d["t"]) if event.kind == "zone_exit" else d["t"]
                found = ScoredEvent(event.kind, d.get("line") or d.get("zone"), cam.scene_time(wall),
                                    int(d.get("track_id", -1)), d.get("cls", ""), d.get("direction", ""),
                                    d.get("speed_kmh"))
                cam.found.append(found)
        if self.out is not None and event.kind in self.LIVE_KINDS:
            scene = f"scene {found.t:6.1f}s" if found is not None else " " * 12
            print(f"{time.monotonic() - self.start:6.1f}s  {scene}  {event.message}", file=self.out, flush=True)

    def camera_summary(self, cam_id: str) -> dict:
        """Scores of one camera: lines, zones, tracking (JSON-able)."""
        cam = self.cameras[cam_id]
        with self._lock:
            found = list(cam.found)
            truth_lines, truth_zones = cam.truth.line_events(), cam.truth.zone_events()
            ids = cam.ids
            tracking = {"objects": ids.objects, "matched": ids.matches, "id_switches": ids.switches,
                        "misses": ids.misses, "false_positives": ids.false_positives, "mota": round(ids.mota, 4)}
            results = {k: v for k, v in cam.results.summary(ids).items()
                       if {"plates": "ocr", "vehicle_types": "attributes"}[k] in cam.kinds}
        lines = score_events(truth_lines, [e for e in found if e.kind == "line_cross"], LINE_TOLERANCE_S)
        if not self.paced:  # the app times frames by the wall clock, the unpaced scene runs at its own pace
            lines.speed_errors_kmh.clear()
        zones = score_events(truth_zones, [e for e in found if e.kind != "line_cross"], ZONE_TOLERANCE_S)
        return {"lines": _line_summary(lines, cam.line_ids), "zones": _zone_summary(zones, cam.zone_ids),
                "tracking": tracking, **results}


def _line_summary(score, line_ids) -> dict:
    """``{line: {"counts": {cls: {direction: [true, found]}}, "matched", "missed", "false", "speed_error_kmh"}}``."""
    out: dict = {line: {"counts": {}, "count_error": 0} for line in line_ids}
    for (_, line, cls, direction), error in score.count_errors().items():
        entry = out.setdefault(line, {"counts": {}, "count_error": 0})
        entry["counts"].setdefault(cls, {})[direction] = [score.true[("line_cross", line, cls, direction)],
                                                           score.found[("line_cross", line, cls, direction)]]
        entry["count_error"] += abs(error)
    errors = np.asarray(score.speed_errors_kmh, np.float64)
    speed = None
    if errors.size:
        speed = {"median_abs": round(float(np.median(np.abs(errors))), 2),
                 "max_abs": round(float(np.abs(errors).max()), 2), "mean": round(float(errors.mean()), 2),
                 "crossings": int(errors.size)}
    for entry in out.values():
        entry.update(matched=score.matched, missed=score.missed, false=score.false, speed_error_kmh=speed)
    return out


def _zone_summary(score, zone_ids) -> dict:
    """``{zone: {"enter": {"true", "found"}, "exit": {...}, "matched", "missed", "false"}}``."""
    out: dict = {}
    for zone in zone_ids:
        for kind in ("zone_enter", "zone_exit"):
            true = sum(n for k, n in score.true.items() if k[:2] == (kind, zone))
            found = sum(n for k, n in score.found.items() if k[:2] == (kind, zone))
            out.setdefault(zone, {})[kind.removeprefix("zone_")] = {"true": true, "found": found}
        out[zone].update(matched=score.matched, missed=score.missed, false=score.false)
    return out


def summary(score: DemoScore, config, stats: dict, elapsed: float, outputs: dict) -> dict:
    """The run's summary (what ``--json`` prints)."""
    backend = next(iter(config.detectors.values())).backend
    cameras = {}
    for cam_id in score.cameras:
        stream = stats["streams"].get(cam_id, {})
        counts = next(iter(stream.get("detectors", {}).values()), None)
        cameras[cam_id] = {"fps": round(stream.get("fps", 0.0), 2),
                           "processed": stream.get("processed", 0),
                           "dropped": counts.dropped if counts is not None else 0,
                           **score.camera_summary(cam_id)}
    latency = {name: {k: round(v, 3) for k, v in row.items() if k in ("p50", "p99", "max")}
               for name, row in stats["latency_ms"].items()}
    return {
        "run": {"seconds": round(elapsed, 2), "cameras": len(cameras), "seed": config.cameras[0].source.seed,
                "source_fps": config.cameras[0].source.fps, "frame_size": list(config.cameras[0].source.size),
                "load_average": [round(v, 2) for v in os.getloadavg()], "cpus": os.cpu_count(),
                "stage_errors": stats["errors"], "skipped": stats["skipped"], "speeds_scored": score.paced},
        "cameras": cameras,
        "latency_ms": latency,
        "events": dict(score.events),
        **outputs,
        "model_roles": _roles(config, backend),
        "tolerances_s": {"line": LINE_TOLERANCE_S, "zone": ZONE_TOLERANCE_S},
    }


def _roles(config, backend: str) -> dict:
    """`MODEL_ROLES` for this run's config (plates only where an ocr secondary runs)."""
    ids = [c.id for c in config.cameras]
    ocr = [c for s in config.secondaries.values() if s.kind == "ocr" for c in (s.cameras or ids)]
    roles = {role: what.format(backend=backend, plate_cameras=", ".join(ocr)) for role, what in MODEL_ROLES}
    if not ocr:
        roles["plate OCR"] = "not run on these cameras (the demo reads plates on its second camera: --cameras 2)"
    return roles


def summary_lines(result: dict) -> list[str]:
    """The summary as text."""
    run = result["run"]
    lines = [f"run: {run['seconds']:.1f} s, {run['cameras']} cameras, load average "
             + " ".join(f"{v:.2f}" for v in run["load_average"]) + f" on {run['cpus']} CPUs, stage errors "
             f"{run['stage_errors']}",
             "camera          fps  processed  dropped   objects  id switches  misses  false pos.  MOTA"]
    for cam_id, cam in result["cameras"].items():
        t = cam["tracking"]
        lines.append(f"  {cam_id:12s} {cam['fps']:5.1f} {cam['processed']:10d} {cam['dropped']:8d} {t['objects']:9d} "
                     f"{t['id_switches']:12d} {t['misses']:7d} {t['false_positives']:11d}  {t['mota']:.3f}")
    tol = result["tolerances_s"]
    for cam_id, cam in result["cameras"].items():
        for line_id, line in cam["lines"].items():
            counts = ", ".join(f"{cls} " + " ".join(f"{d} {tf[0]}/{tf[1]}" for d, tf in sorted(dirs.items()))
                               for cls, dirs in sorted(line["counts"].items()))
            lines.append(f"line {line_id} on {cam_id} (true/found): {counts or 'no crossings'}; count error "
                         f"{line['count_error']}; matched {line['matched']} within {tol['line']:g} s, missed "
                         f"{line['missed']}, false {line['false']}")
            speed = line["speed_error_kmh"]
            if not run["speeds_scored"]:
                lines.append("  speed: not scored (unpaced, the scene's time runs apart from the capture clock)")
            elif speed:
                lines.append(f"  speed (homography) - true: median |error| {speed['median_abs']:.1f} km/h, "
                             f"max {speed['max_abs']:.1f}, mean {speed['mean']:+.1f} over {speed['crossings']}")
        for zone_id, zone in cam["zones"].items():
            lines.append(f"zone {zone_id} on {cam_id} (true/found): enter {zone['enter']['true']}/"
                         f"{zone['enter']['found']}, exit {zone['exit']['true']}/{zone['exit']['found']}; matched "
                         f"{zone['matched']} within {tol['zone']:g} s, missed {zone['missed']}, false {zone['false']}")
    for cam_id, cam in result["cameras"].items():
        p, v = cam.get("plates"), cam.get("vehicle_types")
        if p is not None:
            acc = f"{p['char_accuracy']:.1%}" if p["char_accuracy"] is not None else "-"
            lines.append(f"plates on {cam_id}: {p['right']} of {p['reads']} reads right (characters {acc}); "
                         f"{p['readable_read_right']} of {p['readable_vehicles']} readable vehicles read right"
                         + (f"; wrong: {', '.join(p['wrong'])}" if p["wrong"] else ""))
        if v is not None:
            lines.append(f"vehicle types on {cam_id}: {v['right']} of {v['classified']} right")
    lines.append("events: " + (", ".join(f"{k} {n}" for k, n in sorted(result["events"].items())) or "none"))
    journal, snaps = result["journal"], result["snapshots"]
    lines.append(f"journal: {journal['events']} events in {journal['file']} ("
                 + ", ".join(f"{k} {n}" for k, n in sorted(journal["by_kind"].items())) + ")")
    if snaps is None:
        lines.append("snapshots: off")
    else:
        lines.append(f"snapshots: {snaps['files']} files, {snaps['bytes'] / 1e6:.1f} MB in {snaps['dir']} "
                     f"({snaps['written']} written, {snaps['errors']} errors, {snaps['evicted']} evicted by the quota)")
    lines.append("latency per stage (ms)      p50      p99      max")
    for name, row in result["latency_ms"].items():
        lines.append(f"  {name:22s} {row.get('p50', 0):8.2f} {row.get('p99', 0):8.2f} {row.get('max', 0):8.2f}")
    lines.append("model roles of the product plan, in this demo:")
    lines += [f"  {role:23s} {what}" for role, what in result["model_roles"].items()]
    return lines


def run_surveillance_demo(seconds: float | None = 20.0, frames: int | None = None, cameras: int = 2,
                          seed: int = DEFAULT_SEED, fps: float | None = None, keep: str | None = None,
                          as_json: bool = False, out=sys.stdout) -> int:
    """Run the surveillance demo for `seconds` (or `frames` per camera, whichever ends first); print the
    analytics events live (unless `as_json`) and a summary. Returns the exit code."""
    with tempfile.TemporaryDirectory(prefix="edgert-demo-surveillance-") as tmp:
        state_dir = Path(keep) if keep else Path(tmp)
        state_dir.mkdir(parents=True, exist_ok=True)
        config = surveillance_config(state_dir, cameras, seed, fps, frames)
        score = DemoScore(config, out=None if as_json else out)
        sinks = demo_outputs.open_outputs(config)
        daemon = Daemon(None, notifier=Notifier({}), config=config, listener=score.on_event,
                        on_tracks=score.on_tracks, **sinks.app_options)
        score.wall_time = lambda ns: daemon.app.wall_time(ns)
        if threading.current_thread() is threading.main_thread():
            daemon.install_signal_handlers()  # Ctrl-C ends the run early and still prints the summary
        if not as_json:
            src, det = config.cameras[0].source, next(iter(config.detectors.values()))
            print(f"edgert demo surveillance: {len(config.cameras)} street cameras (seed {seed}) {src.size[0]}x"
                  f"{src.size[1]} at {src.fps:g} fps, detector {det.path} on {det.backend}, state in {state_dir}; "
                  + (f"{seconds:g} s" if seconds else f"{frames} frames per camera"), file=out, flush=True)
        started = time.monotonic()
        try:
            code = daemon.run(duration=seconds)
        finally:
            sinks.close()
        elapsed = time.monotonic() - started
        result = summary(score, config, daemon.app.stats(), elapsed, sinks.report())
        if as_json:
            print(json.dumps(result, indent=1), file=out)
        else:
            print("-" * 72, file=out)
            for line in summary_lines(result):
                print(line, file=out)
        out.flush()
    return code
