"""Hailo on-chip NMS output (HAILO_NMS_BY_CLASS, float32) into `Detections`."""
from __future__ import annotations

import numpy as np

from edgert.core.errors import DecodeError
from edgert.postprocess.detections import Detections, priority_order
from edgert.postprocess.scores import check_size


def parse_hailo_nms(buffer, num_classes: int, max_bboxes: int, input_size, conf: float = 0.0) -> Detections:
    """Parse HAILO_NMS_BY_CLASS output.

    Args:
        buffer: The raw float32 buffer (per class: a box count, then that many
            ``y_min, x_min, y_max, x_max, score`` rows, classes back to back), or the list of
            per-class ``(n_i, 5)`` arrays that ``Bindings.output().get_buffer()`` returns.
        num_classes: Classes in the buffer.
        max_bboxes: Boxes per class the buffer was sized for.
        input_size: ``(width, height)`` of the model input (coordinates are normalised).
        conf: Drop boxes scoring below this.

    Returns:
        `Detections` in input pixels, best first.
    """
    w, h = check_size("input_size", input_size)
    if isinstance(buffer, (list, tuple)):
        if len(buffer) != num_classes:
            raise DecodeError(f"hailo nms: {len(buffer)} class lists, expected {num_classes}")
        rows = [np.asarray(b, np.float32) for b in buffer]
        if any(r.ndim != 2 or r.shape[1] != 5 for r in rows if r.size):
            raise DecodeError("hailo nms: each class list must be (n, 5) rows of y_min, x_min, y_max, x_max, score")
        rows = [r.reshape(-1, 5) for r in rows]
        if any(len(r) > max_bboxes for r in rows):
            raise DecodeError(f"hailo nms: a class holds more than max_bboxes={max_bboxes} boxes")
    else:
        rows = _split_raw(np.asarray(buffer), num_classes, max_bboxes)
    classes = np.concatenate([np.full(len(r), c, np.int32) for c, r in enumerate(rows)]) if rows else np.zeros(0)
    data = np.concatenate(rows) if rows else np.zeros((0, 5), np.float32)
    if not np.all(np.isfinite(data)):
        raise DecodeError("hailo nms: buffer holds NaN or inf")
    keep = data[:, 4] >= np.float32(conf)
    data, classes = data[keep], classes[keep].astype(np.int32)
    boxes = (data[:, [1, 0, 3, 2]] * np.array([w, h, w, h], np.float32)).astype(np.float32)
    order = priority_order(data[:, 4])
    return Detections(boxes[order], data[order, 4].astype(np.float32), classes[order], None)


def _split_raw(buf: np.ndarray, num_classes: int, max_bboxes: int) -> list:
    if buf.dtype != np.float32:
        raise DecodeError(f"hailo nms: expected a float32 buffer, got {buf.dtype}")
    flat = buf.reshape(-1)
    need = num_classes * (1 + 5 * max_bboxes)
    if flat.size < need:
        raise DecodeError(f"hailo nms: buffer holds {flat.size} floats, {num_classes} classes x {max_bboxes} "
                          f"boxes need {need}")
    rows, p = [], 0
    for c in range(num_classes):
        count = flat[p]
        if not (np.isfinite(count) and count == int(count) and 0 <= count <= max_bboxes):
            raise DecodeError(f"hailo nms: class {c} claims {count} boxes (at most {max_bboxes})")
        count = int(count)
        rows.append(flat[p + 1:p + 1 + 5 * count].reshape(count, 5))
        p += 1 + 5 * count
    return rows
