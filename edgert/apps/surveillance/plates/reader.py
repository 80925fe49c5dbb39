"""The plate reader: a plate quad of a frame -> upright rows -> CTC recogniser -> text fitted to a country format.

    reader = PlateReader("builtin:ch_PP-OCRv4_rec", countries=("VN",))
    read = reader.read(frame_bgr, quad)        # -> PlateRead(plate=PlateText("51F-123.45", ...), rows=[...])

The recogniser runs on edgert's onnx backend (or any backend its file takes) with a fixed input width
(`width`, 256 by default: a car plate is ~4.7:1, 48 x 226 px). A quad whose aspect (width over height) is
under `two_row_aspect` is a two-row plate (a Vietnamese motorbike plate is 190 x 140 mm): it is warped
at twice the row height and its halves are read as two lines, top first; the format joins them.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from edgert.apps.surveillance.plates import crop
from edgert.apps.surveillance.plates.formats import PlateText, best_fit, formats_for
from edgert.core.errors import ConfigError, FrameError
from edgert.models.resolve import describe, load_described
from edgert.postprocess.ctc import CtcDecoder

#: Recogniser row height (PP-OCR's 48 px).
ROW_HEIGHT = 48


class PlateRead(NamedTuple):
    """What one read of one plate gave.

    Attributes:
        plate: The read fitted to a format (None when it fits none: not counted as a plate).
        rows: The recogniser's `edgert.postprocess.ctc.CtcText` per row, top first.
        row_height: One row's height in source pixels (for the read's score, `voting.read_score`).
    """

    plate: PlateText | None
    rows: list
    row_height: float


class PlateReader:
    """Reads plates of BGR frames with a CTC recogniser and country formats.

    Args:
        model: The recogniser: a model file or ``builtin:`` name whose card has a ``ctc`` decoder.
        countries: Regions whose formats reads are fitted to (`formats.FORMATS`).
        width: Recogniser input width (a multiple of 8; the card's model takes any).
        two_row_aspect: Quads narrower than this (width / height) are read as two rows.
        backend: Backend of the recogniser ("onnx" for PP-OCR's .onnx).
        num_threads: Backend threads.

    Raises:
        ConfigError: a bad width, an unknown country, a model that is not an OCR model or whose
            dictionary does not fit its classes.
    """

    def __init__(self, model: str = "builtin:ch_PP-OCRv4_rec", countries=("VN",), width: int = 256,
                 two_row_aspect: float = 1.8, backend: str = "auto", num_threads: int = 1):
        if not isinstance(width, int) or width < ROW_HEIGHT or width % 8:
            raise ConfigError(f"plate reader width: expected a multiple of 8 from {ROW_HEIGHT}, got {width!r}")
        self.formats = formats_for(countries)
        self.width, self.two_row_aspect = width, float(two_row_aspect)
        info = describe(model, backend=backend)
        if info.task not in ("ocr", None):
            raise ConfigError(f"plate reader: {model} is a {info.task} model by its card; an ocr model is needed")
        options = {"num_threads": num_threads}
        if "input_shape" in info.options:  # a dynamic width (PP-OCR's .onnx): fix it at ours
            options["input_shape"] = (1, 3, ROW_HEIGHT, width)
        self.loaded = load_described(info, "ocr", backend=backend, options=options)
        try:
            self.model = self.loaded.model
            self.decoder = CtcDecoder.from_card(self.model.outputs[0], self.loaded.decoder, info.path.parent)
            spec = self.model.inputs[0]
            if spec.shape != (1, 3, ROW_HEIGHT, width) or spec.dtype != np.float32:
                raise ConfigError(f"plate reader: {model} takes {spec.dtype} {spec.shape}, not float32 "
                                  f"(1, 3, {ROW_HEIGHT}, {width})")
        except BaseException:
            self.loaded.model.close()
            raise
        self._input = np.zeros(spec.shape, np.float32)
        self._crop = crop.PlateWarp(spec)

    def close(self) -> None:
        """Release the recogniser."""
        self.model.close()

    def _layout(self, frame: np.ndarray, quad) -> tuple:
        """``(checked quad, rows, upright size (w, h), row height in source px)`` of a plate quad."""
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise FrameError(f"plate reader: expected a BGR uint8 (H, W, 3) frame, got "
                             f"{getattr(frame, 'dtype', type(frame).__name__)} {getattr(frame, 'shape', '')}")
        q = crop.check_quad(quad)
        qw, qh = crop.quad_size(q)
        n_rows = 2 if qw / qh < self.two_row_aspect else 1
        row_w = min(self.width, max(8, math.ceil(ROW_HEIGHT * qw / (qh / n_rows))))
        return q, n_rows, (row_w, ROW_HEIGHT * n_rows), qh / n_rows

    def rows(self, frame: np.ndarray, quad) -> tuple:
        """``(upright rows (48, w, 3) uint8 BGR, row height in source px)`` of a plate quad."""
        q, n_rows, size, row_height = self._layout(frame, quad)
        image = self._crop.upright(frame, q, size)
        return [image[i * ROW_HEIGHT:(i + 1) * ROW_HEIGHT] for i in range(n_rows)], row_height

    def read(self, frame: np.ndarray, quad) -> PlateRead:
        """Read the plate inside `quad` (``(4, 2)`` corners, top-left first, clockwise) of a BGR frame.

        Raises:
            FrameError: a frame that is not BGR uint8 with packed pixels, or a degenerate quad.
        """
        q, n_rows, size, row_height = self._layout(frame, quad)
        texts = []
        for row in range(n_rows):  # warped straight into the input, one pass per row
            self._crop.fill(frame, q, size, row, self._input)
            texts.append(self.decoder(self.model.run(self._input)[0]))
        fitted = best_fit([(t.text, t.confidences) for t in texts], self.formats)
        return PlateRead(fitted, texts, float(row_height))
