"""The config section that names a model: reference, backend and the overrides of its card."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from edgert.core.settings import Section


class PreprocessConfig(Section):
    """How frames become model inputs (defaults come from the model card)."""

    resize: Literal["stretch", "letterbox", "center-crop"] | None = Field(None, description="Resize mode.")
    interpolation: Literal["bilinear", "area", "nearest"] | None = Field(None, description="Resampling filter.")
    mean: float | list[float] | None = Field(None, description="Per-channel mean in 0..255 units.")
    std: float | list[float] | None = Field(None, description="Per-channel divisor in 0..255 units.")
    channel_order: Literal["RGB", "BGR"] | None = Field(None, description="Channel order the model expects.")
    pad_value: float | list[float] | None = Field(None, description="Letterbox fill in 0..255 units.")
    pixel_centers: Literal["half", "corner"] | None = Field(
        None, description="Pixel-centre convention the model was trained behind: half (OpenCV resize) or corner "
                          "(warpAffine, MediaPipe).")

    def arguments(self) -> dict:
        """The `Preprocessor` keyword arguments that are set."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class ModelConfig(Section):
    """A model an app runs."""

    path: str = Field("builtin:conveyor", description="Model file (.tflite, .hef, .rknn), builtin:<name>, or "
                                                     "store:<name> (the current version in the model store).")
    backend: str = Field("auto", description="auto, or a backend key: cpu, coral, hailo, rknn.")
    options: dict[str, Any] = Field(default_factory=dict, description="Backend options (see `edgert info`).")
    labels: list[str] | None = Field(None, description="Class names in output order (default: the model card).")
    name: str | None = Field(None, description="Model name for the journal (default: the model card).")
    version: str | None = Field(None, description="Model version for the journal (default: the model card).")
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig, description="Overrides of the card.")
