"""The surveillance app: cameras -> shared detectors (fair scheduling) -> trackers -> analytics -> events.

`Surveillance` is an `edgert.pipeline.app.App`. Per camera a `StreamStage` reads its source (which
reconnects with backoff by itself); per detector a `SharedModelStage` serves the cameras the config
gives it from one `ModelSlot` on its own backend, and an events thread decodes its frames (boxes in
frame pixels, per-class filters), tracks them (a tracker per camera, detector and class group),
runs the camera's analytics and publishes everything on `AppContext.events`:

    track_start / track_update / track_end   camera, track_id, cls, t, box (+ t_start, t_end; at stop, reason)
    zone_enter, zone_exit, loiter, crowd, intrusion, line_cross, line_count   (the analytics')
    face_detected, detected_in_track, vehicle_attributes   (models on crops of tracks: `secondary`)
    face_recognised, face_unknown, face_conflict   (``face_recognition:``, `readers.FaceReaders`)
    plate_read, watched_plate_seen   (``plates:`` over the ``ocr`` secondaries, `readers.PlateReaders`)

Region detectors (``detectors.X.regions``) and secondaries (``secondaries``) run on crops of the
full-resolution frame of selected tracks, each on its own backend and stage thread, within a
per-frame budget (`edgert.apps.surveillance.secondary`); `Surveillance.on_crop_result` plugs readers
(faces, plates) into their results.

The watchdog (`AppContext.on_progress`, `health().last_progress_ns`) is fed only while every enabled
camera is processed, or is inside its reconnect window, or has read its file to the end.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from edgert.apps.surveillance.analytics.camera import CameraAnalytics
from edgert.apps.surveillance.detection import check_finite, filtered, make_detect_decoder
from edgert.apps.surveillance.plan import camera_plans, detector_plans, secondary_plans
from edgert.apps.surveillance.readers import FaceReaders, PlateReaders
from edgert.apps.surveillance.secondary import Secondaries
from edgert.apps.surveillance.tracks import CameraTracks
from edgert.core.errors import ConfigError
from edgert.core.frame import frame_as_bgr
from edgert.models.health import ModelHealth
from edgert.models.loaded import LoadedModel
from edgert.pipeline.app import AppHealth, close_in_reverse
from edgert.pipeline.graph import ChainStage, Graph
from edgert.pipeline.inference import ModelSlot, swap_checked
from edgert.pipeline.secondary import CropRequest
from edgert.pipeline.streams import FairSlots, SharedModelStage, StreamStage
from edgert.sources import make_source

log = logging.getLogger(__name__)

#: A camera counts as processed when a frame of it was finished this recently (or within 4 of its frame periods).
PROGRESS_WINDOW_S = 3.0


class Surveillance:
    """Several cameras, shared detectors, trackers, analytics and events, run as a graph of stage threads.

    Args:
        config: A validated surveillance config (or a whole file's config).
        context: The service's `AppContext`.
        snapshot: ``snapshot(frame_bgr, box, name) -> path | None`` (the events' snapshot writer), or
            None for no snapshots.
        sources: ``{camera_id: Source}`` to use instead of the ones the config names (tests, benchmarks).
        listener: Optional ``listener(event)`` called after each event is published.
        on_tracks: Optional ``on_tracks(camera_id, frame, frame_tracks)`` called with each frame's
            confirmed tracks (a `FrameTracks`), before that frame's events are published (scoring
            against ground truth: ``edgert demo surveillance``).
    """

    def __init__(self, config, context, snapshot=None, sources=None, listener=None, on_tracks=None):
        self.config = config
        self.context = context
        self.snapshot = snapshot
        self.listener = listener
        self.on_tracks = on_tracks
        self._given_sources = dict(sources or {})
        self._stopped = None
        self._lock = threading.Lock()
        self._opened: list = []
        self.frames = 0
        self.errors = 0
        self.skipped = 0
        self.events_by_kind: Counter = Counter()
        self.last_progress_ns = 0
        self._epoch_offset = time.time() - time.monotonic()
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    # -- assembly -------------------------------------------------------------------------------
    def _open(self) -> None:
        ctx = self.context
        self.cameras = camera_plans(self.config)
        self.detectors = detector_plans(self.config, self.cameras)
        self.slots: dict[str, ModelSlot] = {}
        self._model_health: dict[str, dict] = {}
        for det in self.detectors.values():
            slot = self.slots[det.name] = ModelSlot(ctx.infer_depth, det.name)
            self._opened.append(slot.close)
            entry = ctx.load_model(det.model, "detect", check=self._fits_detect(det), at_start=True)
            slot.install(entry)
            self._model_health[det.name] = {entry.generation: ModelHealth(entry.generation)}
        self.crops = Secondaries(secondary_plans(self.config, self.cameras), ctx, self._publish, self.wall_time,
                                 self._opened)
        self._plug_readers()
        self.sources = {}
        for cam in self.cameras.values():
            source = self._given_sources.pop(cam.id, None) or make_source(cam.source)
            self.sources[cam.id] = source
            self._opened.append(source.close)
        labels = {name: self.slots[name].current.labels for name in self.detectors}
        self.tracks = {cam.id: CameraTracks(cam.id, {d: self._groups_of(d, labels[d]) for d in cam.detectors},
                                            labels, cam.update_iou) for cam in self.cameras.values()}
        self._camera_locks = {cam_id: threading.Lock() for cam_id in self.cameras}
        self._processed_ns = dict.fromkeys(self.cameras, 0)
        self._processed = Counter()
        self._sizes: dict = {}
        snapshots = getattr(self.config, "snapshots", None)
        on = self.snapshot is not None and snapshots is not None and snapshots.enabled
        self._snap_kinds = frozenset(snapshots.events) if on else frozenset()
        self._analytics: dict = {}  # camera id -> CameraAnalytics
        self._best: dict = {}  # (camera, track id) -> (box area, snapshot path) of its best view so far
        self.graph = self._build_graph()

    def _plug_readers(self) -> None:
        """Face recognition on the face-region detectors' finds and plate reading on the ocr secondaries'."""
        self.faces = self.plates = None
        faces = getattr(self.config, "face_recognition", None)
        if faces is not None:
            self.faces = FaceReaders(faces, self.context, list(self.cameras), self._publish, self._opened,
                                     self.crops.is_live)
            if self.faces.off is None:
                regions = [n for n, p in self.crops.plans.items() if p.kind == "detect"]
                if not regions:
                    raise ConfigError("face_recognition: no detector runs inside tracked boxes (regions: [person]) "
                                      "to find the faces it recognises")
                for name in regions:
                    self.crops.on_crop_result(name, self.faces.on_faces)
        plates = getattr(self.config, "plates", None)
        if plates is not None:
            self.plates = PlateReaders(plates, self.crops, list(self.cameras), self._publish, self._opened)
            for name in self.plates.names:
                self.crops.on_crop_result(name, self.plates.listener(name))

    def _groups_of(self, detector: str, labels) -> tuple:
        det = self.detectors[detector]
        return det.groups(labels), det.default_tracker()

    def _fits_detect(self, det):
        def check(entry: LoadedModel) -> None:
            make_detect_decoder(entry, det.decoder, det.conf, det.iou, det.decoder_options)
        return check

    def _build_graph(self) -> Graph:
        g = Graph(on_error=self._on_stage_error, extra_timings=("capture_to_event",))
        cams = {cam_id: g.add(StreamStage(cam_id, self.sources[cam_id])) for cam_id in self.cameras}
        self._model_stages = {}
        self._events_stages = []
        for det in self.detectors.values():
            stage = self._model_stages[det.name] = g.add(SharedModelStage(det.name, self.slots[det.name]))
            stage.inbox = FairSlots(det.name, on_drop=lambda job: job.free())
            for cam_id in det.cameras:
                stage.inbox.add_stream(cam_id, self.cameras[cam_id].fps, getattr(self.sources[cam_id], "live", True))
                g.connect(cams[cam_id], stage, latest=True)
            events = g.add(ChainStage(f"events-{det.name}", [
                (f"decode-{det.name}", self._decoder_step(det)),
                (f"track-{det.name}", self._track_step(det)),
            ]))
            g.connect(stage, events, maxsize=4)
            self._events_stages.append(events)
        for crop_stage in self.crops.stages.values():
            g.add(crop_stage)
            for events in self._events_stages:  # its inbox ends when theirs have
                g.connect(events, crop_stage)
        return g

    # -- stage bodies ---------------------------------------------------------------------------
    def _decoder_step(self, det):
        """The decode step of one detector (its decoder lives in its events thread)."""
        state = {"generation": None, "decoder": None}

        def decode(job):
            entry = job.entry
            if state["generation"] != entry.generation:
                state["decoder"] = make_detect_decoder(entry, det.decoder, det.conf, det.iou, det.decoder_options)
                state["generation"] = entry.generation
            try:
                check_finite(job.outputs, entry.model.outputs)
            except Exception:
                self._count("skipped")
                raise
            found = state["decoder"](job.outputs)
            found = found.to_source(job.preprocessor)
            cam = self.cameras[job.stream_id]
            rules = cam.filters_for(det.name, entry.labels, job.frame.size)
            job.result = filtered(found, rules, det.class_ids(entry.labels))
            health = self._model_health[det.name].get(entry.generation)
            if health is not None:
                top = float(job.result.scores.max()) if len(job.result) else 0.0
                health.add(job.times.get(det.name, 0), top)
            return job
        return decode

    def _track_step(self, det):
        def track(job):
            cam_id, frame = job.stream_id, job.frame
            with self._camera_locks[cam_id]:
                self._follow_size(cam_id, frame.size)
                camera_tracks = self.tracks[cam_id]
                if camera_tracks.labels_of(det.name) != tuple(job.entry.labels):
                    camera_tracks.set_groups(det.name, *self._groups_of(det.name, job.entry.labels)[:1],
                                             job.entry.labels, det.default_tracker())
                update = camera_tracks.update(det.name, job.result, frame.timestamp_ns)
                analytics = self._analytics_of(cam_id, frame.size)
                found = [] if analytics is None else analytics.update(update, self.wall_time(frame.timestamp_ns))
                if self.on_tracks is not None:
                    self._call_on_tracks(cam_id, frame, update)
            if "track_end" in self._snap_kinds:
                self._best_views(cam_id, update, frame)
            # A file-like camera (not live) waits for its crops as its frames wait for the detector.
            self.crops.after_tracks(cam_id, update, frame, wait=not getattr(self.sources[cam_id], "live", True))
            for ev in update.events:
                if ev.kind == "track_end":
                    self.crops.track_ended(cam_id, ev.track_id)
                    self._readers_ended(cam_id, ev.track_id, self.wall_time(ev.t_ns))
                self._publish_lifecycle(cam_id, ev, frame)
            for ev in found:
                self._publish(ev.kind, ev.message, frame, **ev.details())
            self.graph.times.add("capture_to_event", time.monotonic_ns() - frame.timestamp_ns)
            self._progress(cam_id)
        return track

    def _readers_ended(self, cam_id: str, track_id: int, t: float) -> None:
        if self.faces is not None:
            self.faces.track_ended(cam_id, track_id, t)
        if self.plates is not None:
            self.plates.track_ended(cam_id, track_id)

    def _call_on_tracks(self, cam_id: str, frame, update) -> None:
        try:
            self.on_tracks(cam_id, frame, update)
        except Exception:  # noqa: BLE001 - an observer's trouble must not stop the cameras
            log.exception("tracks listener failed")

    def _analytics_of(self, cam_id: str, size):
        """The camera's `CameraAnalytics` (built at its first frame, when the frame size is known), or None."""
        analytics = self._analytics.get(cam_id)
        if analytics is None and self.cameras[cam_id].has_rules:
            analytics = self._analytics[cam_id] = CameraAnalytics(self.cameras[cam_id].config, tuple(size))
        return analytics

    def _follow_size(self, cam_id: str, size) -> None:
        """A camera whose frames changed size: its analytics follow (zones and lines rescaled)."""
        size = tuple(size)
        old = self._sizes.get(cam_id)
        self._sizes[cam_id] = size
        if old is not None and old != size:
            log.warning("camera %s: frames are now %dx%d (were %dx%d); zones and lines rescaled", cam_id, *size, *old)
            analytics = self._analytics.get(cam_id)
            if analytics is not None:
                analytics.resize(size)

    def _best_views(self, cam_id: str, update, frame) -> None:
        """Keep a snapshot of each track's best (largest) view so far, for its `track_end` event.

        A new one is written only when the box grew by half since the last, so a track costs a few
        snapshots at most; each replaces the track's previous one.
        """
        areas = (update.boxes[:, 2] - update.boxes[:, 0]) * (update.boxes[:, 3] - update.boxes[:, 1])
        for track_id, box, area in zip(update.ids.tolist(), update.boxes, areas.tolist()):
            best = self._best.get((cam_id, track_id))
            if best is None or area >= 1.5 * best[0]:
                path = self._snapshot(frame, [round(float(v), 1) for v in box], f"{cam_id}-track{track_id}")
                self._best[(cam_id, track_id)] = (area, path if path is not None else (best or (0, None))[1])

    def _publish_lifecycle(self, cam_id: str, ev, frame) -> None:
        words = {"track_start": "appeared", "track_update": "moved", "track_end": "left"}[ev.kind]
        details = {"camera": cam_id, "track_id": ev.track_id, "cls": ev.cls, "t": self.wall_time(ev.t_ns),
                   "box": list(ev.box)}
        if ev.kind == "track_end":
            details.update(t_start=self.wall_time(ev.t_start_ns), t_end=self.wall_time(ev.t_ns))
            if ev.reason:
                details["reason"] = ev.reason
                words = "no longer followed (camera stopped)"
            best = self._best.pop((cam_id, ev.track_id), None)
            if best is not None and best[1] is not None:
                details["snapshot"] = str(best[1])
            frame = None  # the object is gone from this frame: its best view was kept while it was seen
        elif ev.kind == "track_start":
            details["t_start"] = self.wall_time(ev.t_start_ns)
        message = f"{cam_id}: {ev.cls} {ev.track_id} {words}"
        self._publish(ev.kind, message, frame, **details)

    def _publish(self, kind: str, message: str, frame, **details) -> None:
        if frame is not None and kind in self._snap_kinds and "box" in details:
            path = self._snapshot(frame, details["box"], f"{details['camera']}-{kind}-{details.get('track_id', '')}")
            if path is not None:
                details["snapshot"] = str(path)
        event = self.context.events.publish(kind, message, **details)
        with self._lock:
            self.events_by_kind[kind] += 1
        if self.listener is not None:
            try:
                self.listener(event)
            except Exception:  # noqa: BLE001 - a listener's trouble must not stop the cameras
                log.exception("event listener failed")

    def _snapshot(self, frame, box, name):
        try:
            return self.snapshot(frame_as_bgr(frame), box, name)
        except Exception:  # noqa: BLE001 - no picture is better than no event
            log.exception("snapshot failed")
            return None

    def wall_time(self, monotonic_ns: int) -> float:
        """Wall-clock seconds (as the events carry them) of a `time.monotonic_ns` capture timestamp."""
        return round(monotonic_ns / 1e9 + self._epoch_offset, 6)

    def _progress(self, cam_id: str) -> None:
        """A frame of `cam_id` is through; feed the watchdog when every camera is accounted for."""
        now = time.monotonic_ns()
        with self._lock:
            self.frames += 1
            self._processed[cam_id] += 1
            self._processed_ns[cam_id] = now
            healthy = all(self._stream_fine(c, now) for c in self.cameras)
            if healthy:
                self.last_progress_ns = now
        if healthy:
            self.context.on_progress()

    def _stream_fine(self, cam_id: str, now: int) -> bool:
        state = self.sources[cam_id].health.state
        if state in ("reconnecting", "ended"):
            return True
        window = max(PROGRESS_WINDOW_S, 4.0 / self.cameras[cam_id].fps) * 1e9
        return self._processed_ns[cam_id] and now - self._processed_ns[cam_id] <= window

    def _on_stage_error(self, stage, exc, item) -> None:
        self._count("errors")
        if isinstance(item, CropRequest):
            self.crops.failed(item)
            return
        det = getattr(item, "entry", None)
        for name, slot_health in self._model_health.items():
            health = slot_health.get(getattr(item, "model_generation", None))
            if health is not None and det is not None and self.slots[name].current is det:
                health.error()

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    # -- control --------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the stage threads."""
        self.graph.start()

    def safe(self, reason: str) -> None:
        """Surveillance drives no outputs: a stall or a device failure is logged."""
        log.warning("safe state requested (%s): surveillance has no outputs to secure", reason)

    def swap_model(self, slot: str, model) -> LoadedModel:
        """Load (a `ModelConfig`) or take (a `LoadedModel`) a model and switch `slot` to it: a detector at a
        frame boundary, a model on crops (region detector or secondary) at its next crop request.

        The new model is checked against the slot's role and warmed up first; on a refusal it is closed and
        the old one keeps running. The old one is closed once its last frame or crop is through.

        Raises:
            EdgertError: no such slot, or the model does not fit the slot's role (the old one keeps running).
        """
        det = self.detectors.get(slot)
        if det is None and slot in self.crops.slots:
            from edgert.apps.surveillance.secondary import TASK_OF_KIND

            kind = self.crops.plans[slot].kind
            entry = model if isinstance(model, LoadedModel) else self.context.load_model(model, TASK_OF_KIND[kind])
            return self.crops.swap(slot, entry)
        if det is None:
            if isinstance(model, LoadedModel):
                model.model.close()
            raise ConfigError(f"surveillance: no model slot {slot!r} (it has {', '.join(self.models())})")
        entry = model if isinstance(model, LoadedModel) else self.context.load_model(model, "detect")
        self._model_health[slot] = swap_checked(self.slots[slot], entry, self._fits_detect(det),
                                                self._model_health[slot])
        return entry

    def stop(self, timeout: float = 8.0) -> bool:
        """Stop the cameras and drain every stage; True if every stage ended."""
        if self._stopped is None:
            self._stopped = self.graph.stop(timeout)
            for cam_id, camera_tracks in self.tracks.items():  # the tracks still followed end here
                with self._camera_locks[cam_id]:
                    closing = camera_tracks.close()
                for ev in closing:
                    self.crops.track_ended(cam_id, ev.track_id)
                    self._readers_ended(cam_id, ev.track_id, self.wall_time(ev.t_ns))
                    self._publish_lifecycle(cam_id, ev, None)
            self.crops.flush()
            t = round(time.time(), 6)
            if self.faces is not None:
                self.faces.flush(t)
            for cam_id, analytics in self._analytics.items():
                with self._camera_locks[cam_id]:
                    closing = analytics.close(t)
                for ev in closing:  # the unfinished counting intervals
                    self._publish(ev.kind, ev.message, None, **ev.details())
        return self._stopped

    def close(self) -> None:
        """Stop if running and free every device, in reverse opening order."""
        graph = getattr(self, "graph", None)
        if graph is not None and (graph.running or self._stopped is None):
            self.stop()
        if graph is not None and graph.running:
            log.error("stages still running after stop; the models are left open")
            crops = getattr(self, "crops", None)
            running = {**self.slots, **(crops.slots if crops is not None else {})}
            self._opened = [c for c in self._opened if c not in [s.close for s in running.values()]]
        close_in_reverse(self._opened)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def reconfigure(self, new_config) -> bool:
        """A change of models alone (detectors' or models on crops') is swapped in place; anything else needs
        a rebuild (False)."""
        from dataclasses import replace

        models_only = {"detectors", "secondaries"}
        if new_config.model_dump(exclude=models_only) != self.config.model_dump(exclude=models_only):
            return False
        try:
            cameras = camera_plans(new_config)
            new_plan = detector_plans(new_config, cameras)
            new_crops = secondary_plans(new_config, cameras)
        except ConfigError:
            return False  # the rebuild says what is wrong
        old_plan, old_crops = self.detectors, self.crops.plans
        if set(old_plan) != set(new_plan) or not all(o.same_except_model(new_plan[n]) for n, o in old_plan.items()):
            return False
        if set(old_crops) != set(new_crops) or any(replace(p, model=None) != replace(old_crops[n], model=None)
                                                   for n, p in new_crops.items()):
            return False  # models on crops scheduled, placed or decoded otherwise are rebuilt
        for name, det in new_plan.items():
            if det.model != old_plan[name].model:
                self.swap_model(name, det.model)
        for name, plan in new_crops.items():
            if plan.model != old_crops[name].model:
                self.swap_model(name, plan.model)
                old_crops[name] = plan
        self.config = new_config
        self.detectors = new_plan
        return True

    def on_crop_result(self, name: str, listener) -> None:
        """Plug ``listener(track, result) -> bool | None`` into the results of model-on-crops `name`
        (`edgert.apps.surveillance.secondary`; call before `start`).

        Raises:
            ConfigError: no region detector or secondary of that name.
        """
        self.crops.on_crop_result(name, listener)

    # -- reporting ------------------------------------------------------------------------------
    def models(self) -> dict:
        """``{slot: LoadedModel}``: the detectors, then the models on crops (region detectors, secondaries)."""
        return {name: slot.current for name, slot in {**self.slots, **self.crops.slots}.items()}

    def model_health(self, slot: str) -> dict:
        return self._model_health.get(slot) or self.crops.health.get(slot, {})

    def health(self) -> AppHealth:
        streams = {cam_id: source.health for cam_id, source in self.sources.items()}
        failed = None
        if not self.graph.running and not all(h.state == "ended" for h in streams.values()):
            bad = [f"{c}: {h.last_error or h.state}" for c, h in streams.items() if h.state != "ended"]
            failed = f"streams stopped: {'; '.join(bad)}"
        return AppHealth(self.graph.running, self.frames, self.last_progress_ns, streams, failed)

    def status(self) -> str:
        slots = {**self.slots, **self.crops.slots}
        models = ", ".join(f"{n} {s.current.name} on {s.current.model.backend}" for n, s in slots.items())
        tracks = sum(t.live_tracks for t in self.tracks.values())
        faces = f", {self.faces.status()}" if self.faces is not None else ""
        return f"{len(self.cameras)} cameras, {models}, {self.frames} frames, {tracks} tracks{faces}"

    def stats(self) -> dict:
        stats = self.graph.stats()
        streams = {}
        elapsed = stats["elapsed_s"] or 1.0
        for cam_id, source in self.sources.items():
            streams[cam_id] = {"processed": self._processed[cam_id], "fps": self._processed[cam_id] / elapsed,
                               "health": source.health, "tracks": self.tracks[cam_id].live_tracks, "detectors": {}}
        for name, stage in self._model_stages.items():
            for cam_id, counts in stage.inbox.counts().items():
                streams[cam_id]["detectors"][name] = counts
        stats.update(frames=self.frames, errors=self.errors, skipped=self.skipped, streams=streams,
                     events=dict(self.events_by_kind), secondaries=self.crops.stats(),
                     devices={n: s.device_busy() for n, s in self._model_stages.items()})
        if self.faces is not None:
            stats["faces"] = {"off": self.faces.off,
                              **{cam: dict(rec.counts) for cam, rec in self.faces.recognitions.items()}}
        if self.plates is not None:
            stats["plates"] = {"reads": self.plates.reads}
        return stats
