"""Models on crops of tracked objects in the surveillance app: region detectors and secondaries.

Each region detector (``detectors.X.regions``) and each secondary (``secondaries.X``) has its own
`ModelSlot` on the backend its config names and a `CropStage` thread. After a camera's tracks are
updated, `Secondaries.after_tracks` picks, per model, the tracks of its classes that need a crop
(`CropSelector`: new, better view, not yet confident) within its per-frame budget (`CropBudget`),
and offers that frame's crops to the stage without waiting (a busy stage refuses; the tracks stay
eligible). Results come back on the stage's thread and are:

* attached to the track (`Secondaries.results_of`),
* published: ``face_detected`` (a region detector of faces; one event per face found: camera,
  track_id of the person, cls, t, box, score, keypoints ``{name: [x, y]}`` in frame pixels) or
  ``detected_in_track`` (a region detector of any other class), and ``vehicle_attributes`` (the
  ``attributes`` kind: once per track, at its end, from the largest view it was classified on:
  type, type_score, colour, colour_share, box),
* handed to every listener plugged in with ``on_crop_result(name, listener)``.

The listener hook (what the face and plate readers plug into)::

    def listener(track: TrackRef, result: CropResult) -> bool | None:
        ...  # result.value: decoded (Detections in frame pixels / attributes dict), or None (embedding, ocr)
        return True   # the track is settled for this model: it gets no more crops (None/False: more may come)

    app.on_crop_result("plates", listener)   # before start(); runs on that model's stage thread

``result.outputs`` holds the model's raw outputs of the crop's batch row, ``result.frame`` the full
frame (for alignment from keypoints), ``result.placement`` maps model-input pixels to frame pixels.
Face recognition plugs into the region detector's results (faces keyed by their person track)::

    def recognise(track, result):            # result.value: Detections with 6 BlazeFace keypoints each
        found = result.value
        events = recognition.update(frame_as_bgr(result.frame), track.t, [track.track_id] * len(found),
                                    found.boxes, found.keypoints)
        ...                                  # publish them; return True once the track is named

A plate reader plugs into an ``ocr`` secondary on vehicle classes the same way: that model is the text
detector localising plates in the vehicle crop (``result.outputs``: its DB map; ``result.placement`` maps
it to frame pixels), the reader reads the regions off ``result.frame`` (`edgert.apps.surveillance.readers`).

Every model on crops is a model slot of the app, named as in the config (a secondary's name may not be a
detector's: the config refuses it). `Secondaries.swap` replaces one while the app runs: the new model is
checked against its role (`Secondaries.check_role`: an image input the crop preprocessor fills, and outputs
its decoder or readers take), warmed up, and only then installed; its stage switches at its next request
and closes the old model there. A refused model is closed and the old one runs on. ``result.entry`` is the
model that made a result (readers key what they derive from a model's outputs by its ``generation``).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from edgert.apps.surveillance.attributes import AttributeReader
from edgert.apps.surveillance.detection import make_detect_decoder
from edgert.core.errors import ConfigError, EdgertError
from edgert.models.health import ModelHealth
from edgert.pipeline.inference import ModelSlot, swap_checked
from edgert.pipeline.secondary import Candidate, CropBudget, CropRequest, CropSelector, CropStage, quality_of
from edgert.pipeline.streams import row_outputs, sample_spec
from edgert.preprocess import Preprocessor

log = logging.getLogger(__name__)

#: The model task each secondary kind is loaded for.
TASK_OF_KIND = {"detect": "detect", "attributes": "attributes", "embedding": "embed", "ocr": "text_detect"}


@dataclass(frozen=True)
class TrackRef:
    """The track a crop came from: camera, camera-wide track id, class, box (frame pixels), capture time (epoch s)."""

    camera: str
    track_id: int
    cls: str
    box: tuple
    t: float


@dataclass
class CropResult:
    """What a model made of one crop of a track.

    Attributes:
        model: The model's name in the config.
        kind: ``detect``, ``attributes``, ``embedding`` or ``ocr``.
        reason: Why the crop was taken (``new`` or ``better``).
        box: The crop's box (frame pixels).
        quality: The view's quality (box area).
        value: The decoded result (`Detections` in frame pixels for ``detect``, a dict for
            ``attributes``), or None (raw outputs only).
        outputs: Raw outputs of the crop's batch row.
        frame: The full `Frame` the crop was taken from.
        placement: Maps the model input's pixels to the frame's (`Placement.to_source`).
        entry: The `LoadedModel` that ran the crop (its ``generation`` rises at each swap).
    """

    model: str
    kind: str
    reason: str
    box: tuple
    quality: float
    value: object
    outputs: list
    frame: object
    placement: object
    entry: object = None


def _box_list(box) -> list:
    return [round(float(v), 1) for v in box]


class Secondaries:
    """Every model on crops of one `Surveillance`: their slots, stages, selectors, budgets and results.

    Args:
        plans: ``{name: SecondaryPlan}``.
        context: The app's `AppContext` (``load_model``, ``infer_depth``).
        publish: ``publish(kind, message, frame, **details)`` of the app.
        epoch: ``epoch(monotonic_ns) -> float`` epoch seconds.
        opened: The app's list of closers (the slots' are appended).
    """

    def __init__(self, plans: dict, context, publish, epoch, opened: list):
        self.plans, self._publish, self._epoch = plans, publish, epoch
        self.slots: dict[str, ModelSlot] = {}
        self.stages: dict[str, CropStage] = {}
        self.budgets: dict[str, CropBudget] = {}
        self._selectors: dict[tuple, CropSelector] = {}
        self._listeners: dict[str, list] = defaultdict(list)
        self._results: dict[tuple, dict] = {}
        self._lock = threading.Lock()  # results
        self._select = threading.Lock()  # selectors (the track step and the stage threads)
        self._decoders: dict = {}  # (name, generation) -> detect decoder or AttributeReader
        self.health: dict[str, dict[int, ModelHealth]] = {}  # name -> {generation: ModelHealth}
        self.first_result_ns: dict[tuple, int] = {}
        self._live: set = set()  # (camera, track id) of tracks cropped and not yet ended
        for name, plan in plans.items():
            slot = self.slots[name] = ModelSlot(context.infer_depth, name)
            opened.append(slot.close)
            entry = context.load_model(plan.model, TASK_OF_KIND[plan.kind], check=self._fits_at_start(plan),
                                       at_start=True)
            slot.install(entry)
            self.health[name] = {entry.generation: ModelHealth(entry.generation)}
            s = plan.schedule
            self.budgets[name] = CropBudget(s.max_crops, s.time_share)
            self.stages[name] = CropStage(f"crops-{name}", slot, self._decoder(plan), self._deliver,
                                          self.budgets[name])

    @staticmethod
    def _fits_at_start(plan):
        def check(entry) -> None:
            _fits_crops(entry, f"{plan.name} ({plan.kind}): {entry.name} {entry.version}")
            if plan.kind == "detect":
                _detect_decoder(entry, plan)
            elif plan.kind == "attributes":
                AttributeReader(entry.labels)
        return check

    # -- swaps ----------------------------------------------------------------------------------
    def check_role(self, name: str, entry) -> None:
        """Refuse a model that cannot take model-on-crops `name`'s place (one line naming what does not fit).

        Every kind (also checked at start): an image input the crop preprocessor fills with the model's
        preprocessing (one dry crop). ``detect``: the region detector's decoder builds over its outputs.
        ``attributes``: its card names classes and its first output has one score per class. ``embedding``
        and ``ocr`` (raw outputs for the listeners): the running model's number and shapes of outputs per
        crop; an ``ocr`` model whose running one is a DB text detector must be one too (the plate reader
        decodes its map).

        Raises:
            ConfigError: no such model on crops, or the model does not fit.
        """
        plan = self.plans.get(name)
        if plan is None:
            raise ConfigError(f"surveillance: no model on crops named {name!r}")
        where = f"{name} ({plan.kind}): {entry.name} {entry.version}"
        _fits_crops(entry, where)
        try:
            if plan.kind == "detect":
                _detect_decoder(entry, plan)
            elif plan.kind == "attributes":
                reader = AttributeReader(entry.labels)
                scores = int(np.prod(row_outputs(entry.model.outputs)[0].shape))
                if scores != len(reader.labels):
                    raise ConfigError(f"{scores} scores in its first output for its {len(reader.labels)} classes")
            else:
                current = self.slots[name].current
                new, old = _row_shapes(entry), _row_shapes(current)
                if new != old:
                    raise ConfigError(f"outputs per crop {new}, the running {current.name} {current.version} "
                                      f"gives {old} (what the {plan.kind} readers take)")
                if plan.kind == "ocr" and _db_card(current):
                    _db_decoder(entry)
        except EdgertError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    def swap(self, name: str, entry):
        """Check `entry` against `name`'s role, warm it up, and make it `name`'s model from its next request on.

        On a refusal (`check_role`, or the warm-up raising) `entry` is closed and the old model keeps running;
        on success the old one is closed by its stage once its last request is through.

        Returns:
            `entry`, now current (its ``generation`` set).
        """
        self.health[name] = swap_checked(self.slots[name], entry, lambda e: self.check_role(name, e),
                                         self.health[name])
        self._decoders = {k: v for k, v in list(self._decoders.items())
                          if k[0] != name or k[1] >= entry.generation - 1}
        return entry

    def failed(self, request: CropRequest) -> None:
        """A stage error on `request`: counted against the model generation that ran it."""
        name, entry = request.context.get("model"), request.entry
        health = self.health.get(name, {}).get(getattr(entry, "generation", None))
        if health is not None:
            health.error()

    def on_crop_result(self, name: str, listener) -> None:
        """Call ``listener(track, result)`` with each result of model `name` (see the module docstring).

        Raises:
            ConfigError: no such model on crops.
        """
        if name not in self.plans:
            raise ConfigError(f"on_crop_result: no model on crops named {name!r} (there are "
                              f"{', '.join(map(repr, self.plans)) or 'none'})")
        self._listeners[name].append(listener)

    def is_live(self, camera: str, track_id: int) -> bool:
        """Whether a track was cropped and has not ended (a reader ignores results that come after its end)."""
        with self._lock:
            return (camera, track_id) in self._live

    def results_of(self, camera: str, track_id: int) -> dict:
        """``{model name: CropResult}``: the latest result of each model for a live track."""
        with self._lock:
            return dict(self._results.get((camera, track_id), {}))

    # -- per frame ------------------------------------------------------------------------------
    def after_tracks(self, cam_id: str, update, frame, wait: bool = False) -> None:
        """Offer each model the crops of this frame's tracks it wants, within its budget."""
        for name, plan in self.plans.items():
            if cam_id not in plan.cameras:
                continue
            selector = self._selector(name, cam_id)
            candidates = []
            for track_id, box, cls in zip(update.ids.tolist(), update.boxes, update.classes):
                if cls in plan.regions:
                    box_t = tuple(float(v) for v in box)
                    candidates.append(Candidate((cam_id, track_id), box_t, quality_of(box_t), track_id))
            with self._select:
                wanted = [c for c in candidates if selector.reason(c) is not None]
                if not wanted:
                    continue
                allowance = self.budgets[name].allowance(time.monotonic_ns(), len(wanted))
                picked = selector.choose(wanted, allowance)
                if not picked:
                    continue
                for c, _ in picked:
                    selector.sent(c.key, c.quality)
            with self._lock:
                self._live.update(c.key for c, _ in picked)
            classes = dict(zip(update.ids.tolist(), update.classes))
            request = CropRequest(frame, picked, {"camera": cam_id, "model": name, "classes": classes})
            if not self.stages[name].offer(request, wait=wait):
                with self._select:
                    for c, _ in picked:
                        selector.dropped(c.key)

    def track_ended(self, cam_id: str, track_id: int) -> None:
        """Forget an ended track; publish its ``vehicle_attributes`` (largest view classified)."""
        with self._select:
            for name in self.plans:
                selector = self._selectors.get((name, cam_id))
                if selector is not None:
                    selector.forget((cam_id, track_id))
        with self._lock:
            self._live.discard((cam_id, track_id))
            results = self._results.pop((cam_id, track_id), {})
            self.first_result_ns.pop((cam_id, track_id), None)
        for name, result in results.items():
            if result.kind == "attributes" and result.value is not None:
                value = result.value
                self._publish("vehicle_attributes", f"{cam_id}: {value['type']} {track_id}, {value['colour']}", None,
                              camera=cam_id, track_id=track_id, cls=value["cls"], t=value["t"], model=name,
                              box=_box_list(result.box), type=value["type"], type_score=value["type_score"],
                              colour=value["colour"], colour_share=value["colour_share"])

    def flush(self) -> None:
        """At stop: the tracks still live end here (their ``vehicle_attributes`` go out)."""
        with self._lock:
            keys = list(self._live)
        for cam_id, track_id in keys:
            self.track_ended(cam_id, track_id)

    def _selector(self, name: str, cam_id: str) -> CropSelector:
        selector = self._selectors.get((name, cam_id))
        if selector is None:
            s = self.plans[name].schedule
            selector = self._selectors[(name, cam_id)] = CropSelector(s.better_by, s.max_runs)
        return selector

    # -- on the stage threads -------------------------------------------------------------------
    def _decoder(self, plan):
        if plan.kind == "detect":
            def decode(entry, outputs, request, k):
                key = (plan.name, entry.generation)
                decoder = self._decoders.get(key)
                if decoder is None:
                    decoder = self._decoders[key] = _detect_decoder(entry, plan)
                return decoder(outputs).to_source(request.placements[k])
            return decode
        if plan.kind == "attributes":
            def decode(entry, outputs, request, k):
                key = (plan.name, entry.generation)
                reader = self._decoders.get(key)
                if reader is None:
                    reader = self._decoders[key] = AttributeReader(entry.labels)
                return reader.read(entry, outputs, request.frame, request.boxes[k])
            return decode
        return lambda entry, outputs, request, k: None

    def _deliver(self, request: CropRequest, results: list) -> None:
        name, cam_id = request.context["model"], request.context["camera"]
        plan, selector = self.plans[name], self._selector(name, cam_id)
        t = self._epoch(request.frame.timestamp_ns)
        self._count_health(name, request, results)
        for k, ((candidate, reason), value) in enumerate(zip(request.picked, results)):
            with self._select:
                selector.returned(candidate.key)
            outputs = request.outputs[k] if k < len(request.outputs) else None
            if outputs is None:
                continue
            track_id = candidate.key[1]
            track = TrackRef(cam_id, track_id, request.context["classes"].get(track_id, ""), candidate.box, t)
            result = CropResult(name, plan.kind, reason, candidate.box, candidate.quality, value, outputs,
                                request.frame, request.placements[k], request.entry)
            settled = self._keep(track, result)
            settled = self._announce(track, result) or settled
            for listener in self._listeners.get(name, ()):
                try:
                    settled = bool(listener(track, result)) or settled
                except Exception:  # noqa: BLE001 - a reader's trouble must not stop the others
                    log.exception("%s: crop listener failed", name)
            if settled:
                with self._select:
                    selector.confident(candidate.key)

    def _count_health(self, name: str, request: CropRequest, results: list) -> None:
        """Each crop run counts as a frame of its model generation: device time per crop, and the top score
        where the model has one (a region detector's best find, 0 for none; the attribute type's score)."""
        ran = [k for k, out in enumerate(request.outputs) if out is not None]
        health = self.health.get(name, {}).get(getattr(request.entry, "generation", None))
        if health is None or not ran:
            return
        per_crop = request.infer_ns // len(ran)
        kind = self.plans[name].kind
        for k in ran:
            value = results[k] if k < len(results) else None
            if kind == "detect":
                top = float(value.scores.max()) if value is not None and len(value) else 0.0
            elif kind == "attributes":
                top = float(value["type_score"]) if value is not None else None
            else:
                top = None
            health.add(per_crop, top)

    def _keep(self, track: TrackRef, result: CropResult) -> bool:
        """Attach the result to the track (attributes: the largest view's). True when the track is settled."""
        key = (track.camera, track.track_id)
        with self._lock:
            if key not in self._live:
                return False  # the track ended while its crop was in flight: its events are out
            self.first_result_ns.setdefault(key, time.monotonic_ns())
            kept = self._results.setdefault(key, {})
            old = kept.get(result.model)
            if result.kind == "attributes":
                if result.value is not None:
                    result.value.update(cls=track.cls, t=track.t)
                if old is None or result.quality >= old.quality:
                    kept[result.model] = result
                return False
            kept[result.model] = result
        return False

    def _announce(self, track: TrackRef, result: CropResult) -> bool:
        """Publish a region detector's finds (``face_detected`` / ``detected_in_track``)."""
        if result.kind != "detect" or result.value is None or not len(result.value):
            return False
        found, entry = result.value, self.slots[result.model].current
        names = _keypoint_names(entry)
        for j in range(len(found)):
            cls = _label(entry.labels, int(found.classes[j]))
            kind = "face_detected" if cls == "face" else "detected_in_track"
            details = dict(camera=track.camera, track_id=track.track_id, cls=cls, t=track.t, model=result.model,
                           box=_box_list(found.boxes[j]), score=round(float(found.scores[j]), 4),
                           track_cls=track.cls, track_box=_box_list(track.box))
            if found.keypoints is not None:
                kp = found.keypoints[j]
                details["keypoints"] = {names[i] if i < len(names) else str(i): [round(float(x), 1), round(float(y), 1)]
                                        for i, (x, y) in enumerate(kp)}
            self._publish(kind, f"{track.camera}: {cls} in {track.cls} {track.track_id}", None, **details)
        return False

    def stats(self) -> dict:
        """Per model: crops run, device calls, requests refused while busy, crops the budget refused."""
        current = {name: slot.current for name, slot in self.slots.items()}  # None once closed
        return {name: {"crops": st.crops, "calls": st.calls, "busy_refused": st.refused,
                       "budget_refused": self.budgets[name].refused, "skipped_boxes": st.skipped_boxes,
                       "backend": current[name].model.backend if current.get(name) is not None else None}
                for name, st in self.stages.items()}


def _fits_crops(entry, where: str) -> None:
    """Refuse a model whose input the crop preprocessor cannot fill with its preprocessing (one dry crop)."""
    spec = entry.model.inputs[0]
    try:
        pre = Preprocessor(sample_spec(spec), src_format="BGR", src_size=(64, 64), **entry.preprocess)
        pre.regions(np.zeros((64, 64, 3), np.uint8), np.array([[8.0, 8.0, 56.0, 56.0]]))
    except (EdgertError, TypeError) as exc:
        raise ConfigError(f"{where}: input {tuple(spec.shape)} cannot take crops ({exc})") from None


def _row_shapes(entry) -> list:
    return [tuple(int(d) for d in spec.shape) for spec in row_outputs(entry.model.outputs)]


def _db_card(entry) -> bool:
    return isinstance(entry.decoder, dict) and entry.decoder.get("kind") == "db"


def _db_decoder(entry):
    """The DB text decoder of an ocr model (what the plate readers decode its map with)."""
    from edgert.postprocess.db_text import DbTextDecoder

    return DbTextDecoder.from_card(row_outputs(entry.model.outputs)[0], entry.decoder)


def _label(labels, cls: int) -> str:
    return labels[cls] if 0 <= cls < len(labels) else str(cls)


def _keypoint_names(entry) -> tuple:
    return tuple(entry.decoder.get("keypoints", ())) if isinstance(entry.decoder, dict) else ()


def _detect_decoder(entry, plan):
    """A region detector's decoder: its card's SSD decoder where the card has one, else the app's."""
    from edgert.postprocess import SsdDecoder

    card = entry.decoder if isinstance(entry.decoder, dict) else {}
    if card.get("kind") == "ssd" and plan.decoder == "auto" and not plan.decoder_options:
        from edgert.pipeline.streams import row_outputs

        return SsdDecoder.from_card(row_outputs(entry.model.outputs), card, entry.labels)
    return make_detect_decoder(entry, plan.decoder, plan.conf, plan.iou, plan.decoder_options)
