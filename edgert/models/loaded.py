"""`LoadedModel`: a model ready to serve a pipeline, with what its stages need to know about it."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(eq=False)
class LoadedModel:
    """A loaded model and what goes with it (made by `edgert.models.resolve`).

    Attributes:
        model: The `edgert.Model`.
        name: Model name (journal, STATUS).
        version: Model version string.
        labels: Class names in output order (classifiers), or ``()``.
        preprocess: Keyword arguments for `Preprocessor` other than spec and source geometry
            (resize, interpolation, mean, std, channel_order, pad_value, pixel_centers).
        task: What the model does (`edgert.models.tasks.TASKS`), or None when nothing says.
        decoder: Output decoder settings from the card or manifest (``{}`` when none;
            `edgert.postprocess.ssd.SsdDecoder.from_card` reads an SSD one).
        pool: Input buffers of this model (set by the pipeline's `ModelSlot`).
        generation: Set by `ModelSlot` when the model is installed.
        synchronous: Set by `ModelSlot`: the backend runs `submit` at once (no frames in flight).
    """

    model: object
    name: str
    version: str = ""
    labels: tuple = ()
    preprocess: dict = field(default_factory=dict)
    task: str | None = None
    decoder: dict = field(default_factory=dict)
    pool: object = None
    generation: int = -1
    synchronous: bool = True
