"""`Job`: one frame on its way through the pipeline, with what each stage added to it."""
from __future__ import annotations

import time


class Job:
    """One frame in flight.

    Attributes:
        frame: The `edgert.core.frame.Frame` captured.
        model_generation: Generation of the model the tensor was prepared for (convention 11: a job
            runs on that model or not at all, never on another). Not `frame.generation`, which
            counts the camera's configurations.
        entry: The `edgert.pipeline.inference.LoadedModel` of that generation.
        tensor: The model input (a buffer from the stream's pool), once preprocessed.
        outputs: Raw model outputs, once inferred.
        result: What the decode stage made of the outputs (top-k, detections).
        times: ``{stage: duration_ns}`` for this job.
        born_ns: ``CLOCK_MONOTONIC`` time the job was created (after capture).
    """

    __slots__ = ("born_ns", "entry", "frame", "model_generation", "outputs", "release", "result", "tensor", "times")

    def __init__(self, frame, capture_ns: int = 0):
        self.frame = frame
        self.model_generation = -1
        self.entry = None
        self.tensor = None
        self.outputs = None
        self.result = None
        self.times = {"capture": capture_ns} if capture_ns else {}
        self.born_ns = time.monotonic_ns()
        self.release = None  # returns the tensor buffer to its pool

    def free(self) -> None:
        """Give the tensor buffer back to its pool (safe to call more than once)."""
        release, self.release = self.release, None
        if release is not None:
            release()
