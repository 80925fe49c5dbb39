"""Face alignment: a similarity transform from detected keypoints to a canonical template, then one warp pass.

`estimate_similarity` is the least-squares similarity (rotation, uniform scale, translation) of
Umeyama, in its 2-D closed form (``ext/warp.pyx``). `Aligner` estimates one per face and warps
all faces of a frame into one batch of model inputs (`edgert.warp.Warper`: bilinear, corner-mapped),
both in one compiled call (``WarpKernel.align``) into buffers made once.

Templates: ``ARCFACE_112`` is the canonical 5-point ArcFace template at 112x112 (image-left eye,
image-right eye, nose tip, left and right mouth corners, in output pixel indices as the ArcFace
recipe warps with ``cv2.warpAffine``); other input sizes scale it. BlazeFace gives 6 keypoints
(0 right eye and 1 left eye of the subject, i.e. image-left and image-right; 2 nose tip; 3 mouth
centre; 4 and 5 the ear tragions): alignment uses **0, 1, 2 and 3**, the mouth centre matched to the
midpoint of the template's mouth corners. The ears are not used (no template point; they are the
least stable keypoints and leave the frame first when the head turns).

Refusals, one line each, so that a caller can count its skips (`AlignmentError`; `Aligner` reports
them per face instead of raising): keypoints not finite, a keypoint outside the frame, coincident
points, collinear points (``spread`` below ``min_spread``: the square root of the ratio of the
smaller to the larger principal variance of the keypoints; a frontal face is ~0.6, 0 is a line).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from edgert._ext.warp import similarity
from edgert.core.errors import AlignmentError, BusyError, ConfigError, FrameError
from edgert.core.pixel_formats import frame_layout
from edgert.warp import _BUSY, Warper

ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                        [70.7299, 92.2041]])
#: BlazeFace keypoints used, in the order of `template("blazeface6")`: eyes, nose tip, mouth centre.
BLAZEFACE_USED = (0, 1, 2, 3)
LANDMARKS = ("arcface5", "blazeface6")
MIN_SPREAD = 0.1


def template(landmarks: str = "arcface5", size=(112, 112)) -> np.ndarray:
    """Template points (output pixel indices) for `landmarks` at an output of ``size`` (w, h)."""
    if landmarks not in LANDMARKS:
        raise ConfigError(f"landmarks: expected one of {', '.join(LANDMARKS)}, got {landmarks!r}")
    t = ARCFACE_112 if landmarks == "arcface5" else np.vstack([ARCFACE_112[:3], ARCFACE_112[3:].mean(0)])
    return t * (np.asarray(size, np.float64) / 112.0)


def _solve(src: np.ndarray, dst: np.ndarray, frame_size=None):
    """(forward (N, 2, 3), inverse (N, 2, 3), spread (N,)) of the similarity fits of src (N, K, 2) onto dst.

    A spread of -2 marks a face with a point not finite or outside the frame (when `frame_size` is given).
    """
    n = len(src)
    fwd, inv, spread = np.zeros((n, 2, 3)), np.zeros((n, 2, 3)), np.zeros(n)
    w, h = frame_size or (-1, -1)
    similarity(np.ascontiguousarray(src, np.float64), np.ascontiguousarray(dst, np.float64), fwd, inv, spread,
               float(w), float(h))
    return fwd, inv, spread


def _reason(points: np.ndarray, spread: float, frame_size, min_spread: float) -> str | None:
    """Why a face's keypoints give no alignment, or None."""
    if not np.isfinite(points).all():
        return "keypoints are not finite"
    if frame_size is not None:
        w, h = frame_size
        if (points < 0).any() or (points[:, 0] > w).any() or (points[:, 1] > h).any():
            return f"a keypoint lies outside the {w}x{h} frame"
    if spread < 0:
        return "keypoints coincide"
    if spread < min_spread:
        return f"keypoints are collinear (spread {spread:.3f} < {min_spread})"
    return None


def estimate_similarity(src_points, dst_points, *, frame_size=None, min_spread: float = MIN_SPREAD) -> np.ndarray:
    """The least-squares similarity ``(2, 3)`` mapping `src_points` (K, 2) onto `dst_points` (K, 2).

    Args:
        src_points: Detected keypoints (K >= 2), frame pixels.
        dst_points: Where they should land (a template), output pixels.
        frame_size: If given, ``(w, h)``: keypoints outside the frame are refused.
        min_spread: Collinearity threshold (see the module docstring).

    Raises:
        AlignmentError: one line saying why (not finite, outside, coincident, collinear).
    """
    src = np.asarray(src_points, np.float64)
    dst = np.asarray(dst_points, np.float64)
    if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape or len(src) < 2:
        raise AlignmentError(f"points: expected two (K, 2) arrays with K >= 2, got {src.shape} and {dst.shape}")
    fwd, _, spread = _solve(src[None], dst)
    why = _reason(src, float(spread[0]), frame_size, min_spread)
    if why is not None:
        raise AlignmentError(why)
    return fwd[0]


class AlignedFaces(NamedTuple):
    """Faces of one frame aligned into a model-input batch.

    Attributes:
        tensor: ``(N, ...)`` batch, one image per face; a refused face's image is the border value.
        matrices: ``(N, 2, 3)`` frame -> output pixel transforms (as for ``cv2.warpAffine``).
        ok: ``(N,)`` bool, whether each face was aligned.
        reasons: Per face, None or why it was refused (one line): count them as skips.
    """

    tensor: np.ndarray
    matrices: np.ndarray
    ok: np.ndarray
    reasons: tuple


class Aligner:
    """Aligns faces of frames of one stream into inputs of one embedding model, a batch per frame.

    Args:
        spec: The embedding model's input (112x112 ArcFace/MobileFaceNet style, or any size: the
            template scales).
        src_format, src_size, mean, std, channel_order, yuv_range, yuv_matrix: as `Preprocessor`.
        landmarks: "arcface5" (5 points: eyes, nose, mouth corners) or "blazeface6" (BlazeFace's 6).
        pad_value: Border value (0..255) where the aligned face reaches past the frame.
        min_spread: Collinearity threshold.
    """

    def __init__(self, spec, src_format: str = "BGR", src_size=(640, 480), *, landmarks: str = "arcface5",
                 mean=0.0, std=1.0, pad_value=0, channel_order: str = "RGB", yuv_range: str = "limited",
                 yuv_matrix: str = "bt601", min_spread: float = MIN_SPREAD):
        self.warper = Warper(spec, src_format, src_size, mean, std, pad_value, channel_order=channel_order,
                             yuv_range=yuv_range, yuv_matrix=yuv_matrix)
        self.landmarks, self.min_spread = landmarks, float(min_spread)
        self.template = template(landmarks, self.warper.out_size)
        self._template = np.ascontiguousarray(self.template, np.float64)
        self._points = 6 if landmarks == "blazeface6" else 5
        self._inverse = np.empty((1, 2, 3))  # frame -> output maps of the last call, the kernel's scratch

    def __call__(self, frame: np.ndarray, keypoints, out: np.ndarray | None = None) -> AlignedFaces:
        """Align every face of `keypoints` (``(N, 5, 2)`` or ``(N, 6, 2)`` frame pixels) in one pass."""
        kp = keypoints
        if type(kp) is not np.ndarray or kp.dtype != np.float64 or not kp.flags.c_contiguous:
            kp = np.ascontiguousarray(kp, np.float64)
        if kp.ndim == 2:
            kp = kp[None]
        if kp.ndim != 3 or kp.shape[1:] != (self._points, 2):
            raise FrameError(f"keypoints: expected shape (N, {self._points}, 2) for {self.landmarks}, got {kp.shape}")
        if self._points == 6:
            kp = np.ascontiguousarray(kp[:, BLAZEFACE_USED])
        n = len(kp)
        warper = self.warper
        layout = frame_layout(frame, warper.format, *warper.src_size)
        dst = warper._target(frame, n, out)
        if n > len(self._inverse):
            self._inverse = np.empty((max(n, 2 * len(self._inverse)), 2, 3))
        fwd, spread = np.empty((n, 2, 3)), np.empty(n)
        refused = warper._kernel.align(frame, *layout, kp, self._template, fwd, self._inverse, spread,
                                       self.min_spread, dst)
        if refused < 0:
            raise BusyError(_BUSY)
        ok = spread >= self.min_spread
        reasons = (None,) * n if not refused else tuple(
            None if good else _reason(p, s, warper.src_size, self.min_spread) for p, s, good in zip(kp, spread, ok))
        if out is None:
            dst = dst.view()
            dst.flags.writeable = False
        return AlignedFaces(dst, fwd, ok, reasons)
