"""The face and plate readers of the surveillance app, plugged into the results of its models on crops.

`FaceReaders` (``face_recognition:``): the gallery opened with `open_gallery` (a refused gallery turns
recognition off: `FaceReaders.off` says why, the app runs on), the embedding model, a `FaceRecognition`
per camera fed by every face-region detector's finds (the best face of each person crop, keyed by the
person's track) and ``face_recognised`` / ``face_unknown`` / ``face_conflict`` events.

`PlateReaders` (``plates:``): each ``ocr`` secondary is a text detector on vehicle crops; its DB map is
decoded to text regions in frame pixels, rows stacked one over the other are joined (two-row plates), the
best few regions are read by one `PlateReader` per secondary and voted per track (`PlateTracks`):
``plate_read`` / ``watched_plate_seen`` events.

Listeners run on their model's crop stage thread; track ends come from the events threads, hence the locks.
"""
from __future__ import annotations

import logging
import threading

import numpy as np

from edgert.apps.surveillance.faces.embedder import FaceEmbedder
from edgert.apps.surveillance.faces.recognition import FaceRecognition, open_gallery
from edgert.apps.surveillance.plates.reader import PlateReader
from edgert.apps.surveillance.plates.voting import PlateTracks
from edgert.core.errors import EdgertError
from edgert.core.frame import frame_as_bgr

log = logging.getLogger(__name__)


class FaceReaders:
    """Face recognition of every camera of one app.

    Args:
        config: The `FaceRecognitionConfig`.
        context: The app's `AppContext` (``load_model``, ``state_dir``).
        cameras: Camera ids.
        publish: ``publish(kind, message, frame, **details)`` of the app.
        opened: The app's list of closers (the model's and the gallery's are appended).
        live: ``live(camera, track_id) -> bool`` (`Secondaries.is_live`): results of ended tracks are dropped.

    Attributes:
        off: Why recognition is off (a refused gallery), or None.
    """

    def __init__(self, config, context, cameras, publish, opened: list, live):
        self._publish, self._live = publish, live
        self._lock = threading.Lock()
        self.recognitions: dict[str, FaceRecognition] = {}
        entry = context.load_model(config.model, "embed", at_start=True)
        opened.append(entry.model.close)
        self.embedder = FaceEmbedder(entry)
        path = config.gallery_path(context.state_dir)
        self.gallery, self.off = open_gallery(path, self.embedder, threshold=config.threshold, margin=config.margin)
        if self.gallery is None:
            return
        opened.append(self.gallery.close)
        rules = config.rules(self.gallery.threshold)
        self.recognitions = {cam: FaceRecognition(cam, self.embedder, self.gallery, rules) for cam in cameras}

    def status(self) -> str:
        """One phrase for the app's status line."""
        if self.off is not None:
            return self.off
        return f"face recognition on ({len(self.gallery.people())} people enrolled)"

    def on_faces(self, track, result) -> bool:
        """A face-region detector's result for a person track: recognise its best face; True once it is named."""
        rec = self.recognitions.get(track.camera)
        found = result.value
        if rec is None or found is None or not len(found) or found.keypoints is None:
            return False
        best = int(np.argmax(found.scores))
        image = frame_as_bgr(result.frame)
        with self._lock:  # a track ends under this lock, after it stopped being live
            if not self._live(track.camera, track.track_id):
                return False
            events = rec.update(image, track.t, [track.track_id], found.boxes[best:best + 1],
                                found.keypoints[best:best + 1])
            ident = rec.identities.get(track.track_id)
            named = ident is not None and ident.name is not None
        self._send(events, track)
        return named

    def track_ended(self, camera: str, track_id: int, t: float) -> None:
        """A person track ended: its closing events (``face_unknown`` if tried and never named)."""
        rec = self.recognitions.get(camera)
        if rec is None:
            return
        with self._lock:
            events = rec.end(track_id, t)
        self._send(events)

    def flush(self, t: float) -> None:
        """At stop: every track still followed ends."""
        for camera, rec in self.recognitions.items():
            for track_id in list(rec.identities):
                self.track_ended(camera, track_id, t)

    def _send(self, events, track=None) -> None:
        for ev in events:
            details = ev.details()
            if track is not None:
                details["box"] = [round(float(v), 1) for v in track.box]
            self._publish(ev.kind, ev.message, None, **details)


def plate_regions(quads: np.ndarray, scores: np.ndarray, limit: int) -> list:
    """Candidate plate quads of a crop's text regions: each row pair stacked one over the other joined (a
    two-row plate) first, then the single rows, best score first; at most `limit`."""
    import cv2

    from edgert.postprocess.db_text import order_corners

    n = len(quads)
    joined, singles = [], [(float(scores[i]), quads[i]) for i in range(n)]
    lo, hi = quads.min(1), quads.max(1)  # (N, 2) each
    for i in range(n):
        for j in range(n):
            if i == j or lo[i, 1] > lo[j, 1]:
                continue  # i is the upper row
            overlap = min(hi[i, 0], hi[j, 0]) - max(lo[i, 0], lo[j, 0])
            widths = min(hi[i, 0] - lo[i, 0], hi[j, 0] - lo[j, 0])
            height = max(hi[i, 1] - lo[i, 1], hi[j, 1] - lo[j, 1])
            if overlap > 0.5 * widths and lo[j, 1] - hi[i, 1] < 0.6 * height:
                rect = cv2.minAreaRect(np.concatenate([quads[i], quads[j]]).astype(np.float32))
                joined.append((float(min(scores[i], scores[j])), order_corners(cv2.boxPoints(rect))))
    ranked = sorted(joined, key=lambda c: -c[0]) + sorted(singles, key=lambda c: -c[0])
    return [q for _, q in ranked[:limit]]


class PlateReaders:
    """Plate reading of every ``ocr`` secondary of one app.

    Args:
        config: The `PlateReadingConfig`.
        secondaries: The app's `Secondaries` (the ocr slots' text detector entries).
        cameras: Camera ids.
        publish: ``publish(kind, message, frame, **details)`` of the app.
        opened: The app's list of closers.
    """

    def __init__(self, config, secondaries, cameras, publish, opened: list):
        from edgert.pipeline.streams import row_outputs
        from edgert.postprocess.db_text import DbTextDecoder

        self.config, self._publish, self._live = config, publish, secondaries.is_live
        self._lock = threading.Lock()
        self.tracks = {cam: PlateTracks(config, cam) for cam in cameras}
        self.names = [n for n, p in secondaries.plans.items() if p.kind == "ocr"]
        self.readers: dict[str, PlateReader] = {}
        self._decoders = {}  # (name, model generation) -> DbTextDecoder: a swapped text detector gets its own
        for name in self.names:
            entry = secondaries.slots[name].current
            self._decoders[(name, entry.generation)] = DbTextDecoder.from_card(row_outputs(entry.model.outputs)[0],
                                                                               entry.decoder)
            reader = self.readers[name] = PlateReader(config.recogniser, config.countries, config.width,
                                                      config.two_row_aspect, config.backend)
            opened.append(reader.close)
        self.reads = 0

    def listener(self, name: str):
        """The ``on_crop_result`` listener of ocr secondary `name`."""
        def on_text(track, result) -> bool:
            return self._read(name, track, result)
        return on_text

    def _decoder(self, name: str, entry):
        key = (name, entry.generation)
        decoder = self._decoders.get(key)
        if decoder is None:
            from edgert.pipeline.streams import row_outputs
            from edgert.postprocess.db_text import DbTextDecoder

            decoder = DbTextDecoder.from_card(row_outputs(entry.model.outputs)[0], entry.decoder)
            self._decoders = {k: v for k, v in self._decoders.items() if k[0] != name or k[1] >= key[1] - 1}
            self._decoders[key] = decoder
        return decoder

    def _read(self, name: str, track, result) -> bool:
        found = self._decoder(name, result.entry)(result.outputs[0], to_source=result.placement.to_source)
        if not len(found.quads):
            return False
        image = frame_as_bgr(result.frame)
        best = None
        for quad in plate_regions(found.quads, found.scores, self.config.max_regions):
            try:
                read = self.readers[name].read(image, quad)
            except EdgertError:  # a degenerate region: not a plate
                continue
            if read.plate is not None and (best is None or min(read.plate.confidences) > min(best.plate.confidences)):
                best = read
        if best is None:
            return False
        with self._lock:
            if not self._live(track.camera, track.track_id):
                return False
            self.reads += 1
            events = self.tracks[track.camera].add(track.track_id, best.plate, best.row_height)
        for ev in events:
            self._publish(ev.kind, ev.message, None, **ev.details, cls=track.cls, t=track.t, model=name,
                          box=[round(float(v), 1) for v in track.box])
        return False  # later, larger views still improve the vote (the schedule's max_runs bounds them)

    def track_ended(self, camera: str, track_id: int) -> None:
        """Forget an ended track's votes."""
        tracks = self.tracks.get(camera)
        if tracks is not None:
            with self._lock:
                tracks.end(track_id)
