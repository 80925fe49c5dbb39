"""`Job`: one frame on its way through the pipeline, with what each stage added to it."""
from __future__ import annotations

import time

from edgert.core.errors import FrameError


class Job:
    """One frame, or one region of a frame, in flight.

    A detector's job covers the whole frame; each box it finds may fan out as a child job for a
    secondary model (`for_region`), which shares the parent's frame and preprocesses only its box.

    Attributes:
        frame: The `edgert.core.frame.Frame` captured.
        stream_id: Which stream the frame came from (one graph may serve several cameras).
        parent: The job whose result this region came from, or None for a whole frame.
        region: ``(x0, y0, x1, y1)`` integer pixel box of the frame this job covers, or None for
            the whole frame. Boxes a model finds in a region are in the region's pixels until
            `to_frame` maps them back.
        model_generation: Generation of the model the tensor was prepared for (convention 11: a job
            runs on that model or not at all, never on another). Not `frame.generation`, which
            counts the camera's configurations.
        entry: The `edgert.models.loaded.LoadedModel` of that generation.
        preprocessor: The `Preprocessor` that made the tensor, where the stage records it (to map
            boxes from model-input pixels back to the frame's), else None.
        tensor: The model input (a buffer from the stream's pool), once preprocessed.
        outputs: Raw model outputs, once inferred.
        result: What the decode stage made of the outputs (top-k, detections).
        times: ``{stage: duration_ns}`` for this job.
        born_ns: ``CLOCK_MONOTONIC`` time the job was created (after capture).
    """

    __slots__ = ("born_ns", "entry", "frame", "model_generation", "outputs", "parent", "preprocessor", "region", "release",
                 "result", "stream_id", "tensor", "times")

    def __init__(self, frame, capture_ns: int = 0, stream_id: str = "", parent=None, region=None):
        self.frame = frame
        self.stream_id = stream_id
        self.parent = parent
        self.region = region
        self.model_generation = -1
        self.entry = None
        self.preprocessor = None
        self.tensor = None
        self.outputs = None
        self.result = None
        self.times = {"capture": capture_ns} if capture_ns else {}
        self.born_ns = time.monotonic_ns()
        self.release = None  # returns the tensor buffer to its pool

    @classmethod
    def for_region(cls, parent: Job, box) -> Job:
        """A child job for `box` (frame pixels, any floats) of the parent's frame, clipped to the frame.

        Raises:
            FrameError: the box is empty once clipped (it lies outside the frame).
        """
        w, h = parent.frame.size
        x0, y0, x1, y1 = (float(v) for v in box)
        region = (max(0, int(x0)), max(0, int(y0)), min(w, int(-(-x1 // 1))), min(h, int(-(-y1 // 1))))
        if region[2] <= region[0] or region[3] <= region[1]:
            raise FrameError(f"region {tuple(box)} lies outside the {w}x{h} frame")
        child = cls(parent.frame, stream_id=parent.stream_id, parent=parent, region=region)
        child.born_ns = parent.born_ns  # latency counts from the capture of the frame
        return child

    def to_frame(self, boxes_xyxy):
        """Boxes in this job's region pixels -> frame pixels (unchanged for a whole-frame job)."""
        import numpy as np

        boxes = np.asarray(boxes_xyxy, np.float32)
        if self.region is None:
            return boxes
        x0, y0 = self.region[0], self.region[1]
        return boxes + np.array([x0, y0, x0, y0], np.float32)

    def free(self) -> None:
        """Give the tensor buffer back to its pool (safe to call more than once)."""
        release, self.release = self.release, None
        if release is not None:
            release()
