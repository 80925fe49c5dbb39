"""`SsdDecoder`: anchor-based SSD outputs (MediaPipe/BlazeFace style, keypoints included) and the
TF Object Detection API's post-processed outputs (TFLite_Detection_PostProcess)."""
from __future__ import annotations

import numpy as np

from edgert.core.errors import ConfigError, DecodeError
from edgert.postprocess import kernels
from edgert.postprocess.detections import Detections, nms, priority_order
from edgert.postprocess.scores import (
    ScoreMap,
    check_count,
    check_size,
    check_specs,
    check_unit,
    require_shape,
    sigmoid,
)
from edgert.postprocess.ssd_anchors import SsdAnchorOptions, ssd_anchors

__all__ = ["SsdAnchorOptions", "SsdDecoder", "ssd_anchors"]

LAYOUTS = ("auto", "anchors", "tflite-postprocess")
#: `SsdDecoder` arguments a model card's ``"decoder"`` may set (besides "kind", "anchors" and "keypoints").
CARD_ARGUMENTS = ("conf", "iou", "layout", "input_size", "scale", "reverse_output_order", "exp_box_size", "sigmoid",
                  "score_clip", "max_det", "weighted", "class_aware", "regressor")


class SsdDecoder:
    """Decodes SSD outputs into `Detections` (boxes and keypoints in model-input pixels).

    Args:
        outputs: The model's output specs, in output order.
        anchors: `SsdAnchorOptions`, or an ``(N, 4)`` array of x_centre, y_centre, w, h (normalised)
            for the "anchors" layout.
        conf: Minimum score, in [0, 1].
        iou: NMS IoU threshold, in [0, 1].
        layout: "auto", "anchors" (a regressor ``(1, N, 4 + 2K)`` and a classificator ``(1, N, C)``)
            or "tflite-postprocess" (boxes ``(1, N, 4)``, classes, scores ``(1, N)``, count ``(1,)``).
        input_size: ``(width, height)`` of the model input (default: from the anchor options).
        scale: ``(x_scale, y_scale, w_scale, h_scale)`` the regressor divides by (MediaPipe's
            x_scale... options; BlazeFace: the input size).
        reverse_output_order: Regressor order x, y, w, h (True, BlazeFace) or y, x, h, w.
        exp_box_size: Box sizes are log-encoded (apply_exponential_on_box_size).
        sigmoid: Scores are logits.
        score_clip: Logits are clipped to +-this before the sigmoid (0 disables).
        max_det: Most detections returned.
        weighted: Weighted NMS (BlazeFace) instead of greedy.
        class_aware: NMS per class.
        labels: Class names; their count must match the outputs.
        regressor: Index of the regressor output (anchors layout). Default: the output whose name
            says so ("regress", "box", "loc"), else output 0 (MediaPipe's order).

    A decoder keeps scratch buffers: use one per thread.

    Attributes:
        keypoint_names: Names of the keypoints in order (from a model card), or ``()``.
    """

    keypoint_names: tuple = ()

    @classmethod
    def from_card(cls, outputs, settings: dict, labels=None, **overrides) -> "SsdDecoder":
        """The decoder a model card's ``"decoder"`` object describes (BlazeFace's, for one).

        Args:
            outputs: The model's output specs.
            settings: ``{"kind": "ssd", "anchors": {SsdAnchorOptions fields}, "keypoints": [names],
                ...}`` plus any of `CARD_ARGUMENTS`.
            labels: Class names (the card's).
            **overrides: `SsdDecoder` arguments over the card's (e.g. ``conf``).

        Raises:
            ConfigError: settings of another decoder kind, unknown keys, bad anchor options, or
                keypoint names that do not fit the regressor.
        """
        if not isinstance(settings, dict) or settings.get("kind") != "ssd":
            kind = settings.get("kind") if isinstance(settings, dict) else settings
            raise ConfigError(f"decoder: the model card names decoder {kind!r}, not 'ssd'")
        unknown = sorted(set(settings) - {"kind", "anchors", "keypoints", *CARD_ARGUMENTS})
        if unknown:
            raise ConfigError(f"decoder: unknown key(s) {', '.join(unknown)}; expected kind, anchors, keypoints or "
                              f"{', '.join(CARD_ARGUMENTS)}")
        kwargs = {k: settings[k] for k in CARD_ARGUMENTS if k in settings}
        if "anchors" in settings:
            kwargs["anchors"] = _anchor_options(settings["anchors"])
        kwargs.update(overrides)
        decoder = cls(outputs, labels=labels, **kwargs)
        names = tuple(settings.get("keypoints", ()))
        if names and len(names) != decoder.num_keypoints:
            raise ConfigError(f"decoder: {len(names)} keypoint names for {decoder.num_keypoints} keypoints")
        decoder.keypoint_names = names
        return decoder

    def __init__(self, outputs, anchors=None, conf: float = 0.5, iou: float = 0.3, *, layout: str = "auto",
                 input_size=None, scale=None, reverse_output_order: bool = True, exp_box_size: bool = False,
                 sigmoid: bool = True, score_clip: float = 100.0, max_det: int = 100, weighted: bool = False,
                 class_aware: bool = False, labels=None, regressor: int | None = None):
        self.outputs = check_specs(outputs)
        self.conf, self.iou = check_unit("conf", conf), check_unit("iou", iou)
        if layout not in LAYOUTS:
            raise ConfigError(f"layout: expected one of {', '.join(LAYOUTS)}, got {layout!r}")
        max_det = check_count("max_det", max_det)
        self.layout = layout if layout != "auto" else ("tflite-postprocess" if len(self.outputs) == 4 else "anchors")
        self.max_det, self.weighted, self.class_aware = int(max_det), bool(weighted), bool(class_aware)
        self.reverse, self.exp_box, self.sigmoid, self.clip = (bool(reverse_output_order), bool(exp_box_size),
                                                               bool(sigmoid), float(score_clip))
        if isinstance(anchors, SsdAnchorOptions) and input_size is None:
            input_size = (anchors.input_size_width, anchors.input_size_height)
        if input_size is None:
            raise ConfigError("input_size: required (or pass SsdAnchorOptions, which carry it)")
        self.input_size = check_size("input_size", input_size)
        if self.layout == "anchors":
            self._init_anchors(anchors, scale, regressor)
        else:
            self._init_postprocessed()
        if labels is not None and self.num_classes is not None and len(labels) != self.num_classes:
            raise ConfigError(f"labels: {len(labels)} given but the outputs have {self.num_classes} classes")
        self.labels = None if labels is None else list(labels)

    def _init_anchors(self, anchors, scale, regressor) -> None:
        if len(self.outputs) != 2 or any(len(o.shape) != 3 or o.shape[0] != 1 for o in self.outputs):
            raise ConfigError(f"layout anchors: expects two outputs (1, N, 4+2K) and (1, N, C), got "
                              f"{[o.shape for o in self.outputs]}")
        if regressor is None:
            named = [i for i, o in enumerate(self.outputs) if any(k in o.name.lower() for k in ("regress", "box", "loc"))]
            regressor = named[0] if len(named) == 1 else 0
        if regressor not in (0, 1):
            raise ConfigError(f"regressor: expected 0 or 1, got {regressor!r}")
        self.reg, self.cls = regressor, 1 - regressor
        reg, cls = self.outputs[self.reg], self.outputs[self.cls]
        if reg.shape[1] != cls.shape[1]:
            raise ConfigError(f"layout anchors: regressor has {reg.shape[1]} boxes, classificator {cls.shape[1]}")
        if reg.shape[2] < 4 or reg.shape[2] % 2:
            raise ConfigError(f"layout anchors: regressor width {reg.shape[2]} is not 4 + 2 x keypoints")
        if anchors is None:
            raise ConfigError("anchors: required for the anchors layout (SsdAnchorOptions or an (N, 4) array)")
        table = ssd_anchors(anchors) if isinstance(anchors, SsdAnchorOptions) else np.asarray(anchors, np.float32)
        if table.ndim != 2 or table.shape != (reg.shape[1], 4):
            raise ConfigError(f"anchors: {table.shape} anchors for {reg.shape[1]} regressor rows")
        self.anchors = np.ascontiguousarray(table, np.float32)
        w, h = self.input_size
        sc = (w, h, w, h) if scale is None else tuple(float(v) for v in scale)
        if len(sc) != 4 or min(sc) <= 0:
            raise ConfigError(f"scale: expected (x_scale, y_scale, w_scale, h_scale) > 0, got {scale!r}")
        self.scale = np.array(sc, np.float32)
        self.num_keypoints = (reg.shape[2] - 4) // 2
        self.num_classes = cls.shape[2]
        if self.num_classes < 1:
            raise ConfigError("layout anchors: the classificator has no classes")
        self.score_map = ScoreMap(cls, "sigmoid" if self.sigmoid else "none")
        self.reg_map = ScoreMap(reg)
        self.threshold = self.score_map.threshold(self.conf)
        if self.sigmoid and self.clip > 0 and float(sigmoid(np.float32(-self.clip))) >= self.conf:
            # Clipped logits all score at least sigmoid(-clip): every anchor is a candidate.
            self.threshold = cls.dtype.type(np.iinfo(cls.dtype).min if cls.dtype != np.float32 else -np.inf)
        self.buffers = kernels.CandidateBuffers(cls.shape[1], cls.dtype)

    def _init_postprocessed(self) -> None:
        shapes = [o.shape for o in self.outputs]
        box = [i for i, s in enumerate(shapes) if len(s) == 3 and s[-1] == 4]
        count = [i for i, s in enumerate(shapes) if int(np.prod(s)) == 1]
        rest = [i for i in range(4) if i not in box + count]
        if len(box) != 1 or len(count) != 1 or len(rest) != 2:
            raise ConfigError(f"layout tflite-postprocess: expects boxes (1, N, 4), classes and scores (1, N) and "
                              f"count (1,), got {shapes}")
        names = [self.outputs[i].name.lower() for i in rest]
        # Named outputs say which is which. TF2 exports name them StatefulPartitionedCall:N with
        # scores first (N=0) and classes last (N=3); TF1 keeps TFLite_Detection_PostProcess's
        # order: boxes, classes, scores, count.
        if "score" in names[0] or "class" in names[1] or (
                all("statefulpartitionedcall" in n for n in names) and names[0].endswith(":0")):
            rest = rest[::-1]
        self.box_i, self.class_i, self.score_i, self.count_i = box[0], rest[0], rest[1], count[0]
        self.num_classes, self.num_keypoints = None, 0

    def __call__(self, outputs) -> Detections:
        """Decode one frame's raw outputs into `Detections`."""
        if not isinstance(outputs, (list, tuple)) or len(outputs) != len(self.outputs):
            raise DecodeError(f"outputs: expected a list of {len(self.outputs)} arrays")
        arrays = [require_shape(a, s, f"outputs[{i}]") for i, (a, s) in enumerate(zip(outputs, self.outputs))]
        if self.layout == "tflite-postprocess":
            return self._postprocessed(arrays)
        if self.threshold is None:
            return Detections.empty(self.num_keypoints)
        scores_raw = arrays[self.cls][0]
        idx, cls, best = self.buffers.select(scores_raw, 0, self.num_classes, self.threshold, False,
                                             f"outputs[{self.cls}]")
        raw_best = best[idx]
        if self.sigmoid and self.clip > 0:
            raw_values = np.clip(self.score_map.values(raw_best), -self.clip, self.clip)
            scores = sigmoid(raw_values)
        else:
            scores = self.score_map.scores(raw_best)
        keep = scores >= np.float32(self.conf)
        idx, cls, scores = idx[keep], cls[keep].copy(), scores[keep]
        reg = self.reg_map.values(arrays[self.reg][0][idx])
        if not np.all(np.isfinite(reg)):
            raise DecodeError(f"outputs[{self.reg}]: box regressors hold NaN or inf")
        boxes, keypoints = self._decode_boxes(reg, self.anchors[idx])
        return nms(boxes, scores, cls, iou=self.iou, max_det=self.max_det, class_aware=self.class_aware,
                   weighted=self.weighted, keypoints=keypoints if self.num_keypoints else None)

    def _decode_boxes(self, reg: np.ndarray, anchors: np.ndarray):
        xs, ys, ws, hs = self.scale
        if self.reverse:
            x, y, w, h = reg[:, 0], reg[:, 1], reg[:, 2], reg[:, 3]
        else:
            y, x, h, w = reg[:, 0], reg[:, 1], reg[:, 2], reg[:, 3]
        ax, ay, aw, ah = anchors[:, 0], anchors[:, 1], anchors[:, 2], anchors[:, 3]
        cx, cy = x / xs * aw + ax, y / ys * ah + ay
        if self.exp_box:
            bw, bh = np.exp(w / ws) * aw, np.exp(h / hs) * ah
        else:
            bw, bh = w / ws * aw, h / hs * ah
        iw, ih = np.float32(self.input_size[0]), np.float32(self.input_size[1])
        boxes = np.stack([(cx - bw / 2) * iw, (cy - bh / 2) * ih, (cx + bw / 2) * iw, (cy + bh / 2) * ih], axis=1)
        if not self.num_keypoints:
            return boxes.astype(np.float32), np.zeros((len(reg), 0, 2), np.float32)
        kp = reg[:, 4:].reshape(-1, self.num_keypoints, 2)
        if not self.reverse:
            kp = kp[:, :, ::-1]
        kx = (kp[:, :, 0] / xs * aw[:, None] + ax[:, None]) * iw
        ky = (kp[:, :, 1] / ys * ah[:, None] + ay[:, None]) * ih
        return boxes.astype(np.float32), np.stack([kx, ky], axis=2).astype(np.float32)

    def _postprocessed(self, arrays) -> Detections:
        boxes = self._real(arrays, self.box_i).reshape(-1, 4)
        classes = self._real(arrays, self.class_i).reshape(-1)
        scores = self._real(arrays, self.score_i).reshape(-1)
        count = self._real(arrays, self.count_i).reshape(-1)[0]
        if not (np.isfinite(count) and 0 <= count <= scores.size):
            raise DecodeError(f"outputs[{self.count_i}]: detection count {count} outside 0..{scores.size}")
        n = int(count)
        boxes, classes, scores = boxes[:n], classes[:n], scores[:n]
        if not (np.all(np.isfinite(boxes)) and np.all(np.isfinite(scores)) and np.all(np.isfinite(classes))):
            raise DecodeError("outputs: detections hold NaN or inf")
        if scores.size and (scores.min() < 0 or scores.max() > 1):
            raise DecodeError(f"outputs[{self.score_i}]: scores outside [0, 1]: the classes and scores outputs are "
                              "probably swapped (TF1 and TF2 exports order them differently)")
        keep = scores >= np.float32(self.conf)
        boxes, classes, scores = boxes[keep], classes[keep], scores[keep]
        w, h = self.input_size
        xyxy = (boxes[:, [1, 0, 3, 2]] * np.array([w, h, w, h], np.float32)).astype(np.float32)
        order = priority_order(scores)[: self.max_det]
        return Detections(xyxy[order], scores[order].astype(np.float32), classes[order].astype(np.int32), None)

    def _real(self, arrays, i: int) -> np.ndarray:
        a, spec = arrays[i], self.outputs[i]
        if a.dtype == np.float32:
            return a
        if spec.quant is None:
            return a.astype(np.float32)
        return kernels.dequantize(a, spec.quant)


def _anchor_options(value) -> SsdAnchorOptions:
    """`SsdAnchorOptions` from a card's JSON object (lists become tuples)."""
    if not isinstance(value, dict):
        raise ConfigError(f"decoder: 'anchors' must be an object of SsdAnchorOptions fields, got {value!r}")
    try:
        return SsdAnchorOptions(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
    except TypeError as exc:
        raise ConfigError(f"decoder: anchors: {exc}") from None
