"""The one exception hierarchy of edgert.

Every error edgert raises on purpose is an `EdgertError`. The CLI prints it as one line and exits
with code 2 (a traceback only with `--debug`). Subclasses also derive from the matching builtin, so
callers that already catch `ValueError` or `ImportError` keep working.
"""


class EdgertError(Exception):
    """Base class of every error edgert raises on purpose."""


class SpecError(EdgertError, ValueError):
    """A tensor spec or quantization is malformed (shape, dtype, scale, zero point, axis)."""


class ConfigError(EdgertError, ValueError):
    """A setting is invalid: unknown key, wrong type, value out of range, inconsistent options."""


class FrameError(EdgertError, ValueError):
    """A frame does not match what its stream declared (dtype, shape, channels, stride, size)."""


class DecodeError(EdgertError, ValueError):
    """Model outputs do not match the layout a decoder was configured for."""


class TrackingError(EdgertError, ValueError):
    """Detections or timestamps given to a tracker are malformed (shape, NaN, time going backwards)."""


class ModelError(EdgertError, ValueError):
    """A model file is missing, unreadable, corrupted or not supported."""


class BackendUnavailable(EdgertError, ImportError):
    """A backend cannot run here: its SDK is not installed or its device is absent."""


class DeviceError(EdgertError, RuntimeError):
    """The accelerator failed while running; the caller may fall back to another backend."""


class ClosedError(EdgertError, RuntimeError):
    """An object was used after `close()`."""


class BusyError(EdgertError, RuntimeError):
    """An object that serves one thread at a time was used from a second thread meanwhile."""


class SourceError(EdgertError, RuntimeError):
    """A camera or stream failed: it did not open, timed out, or vanished mid-run."""


class JournalError(EdgertError, OSError):
    """The decision journal could not be written (disk full, read-only, corrupted)."""


class ActuatorError(EdgertError, RuntimeError):
    """An actuator could not be driven (pin busy or missing, pin factory unavailable)."""


class BundleError(EdgertError, ValueError):
    """A model bundle was refused: bad signature, tampered or missing file, unsafe archive, failed canary."""


class FleetError(EdgertError, ConnectionError):
    """The fleet broker could not be reached, refused the connection, or did not answer in time."""


class AlignmentError(EdgertError, ValueError):
    """Keypoints that give no alignment: not finite, outside the frame, coincident or collinear."""


class KernelsNotBuilt(EdgertError, ImportError):
    """edgert's compiled kernels (edgert._ext) are not built where edgert is imported from."""


class ExtraNotInstalled(EdgertError, ImportError):
    """A package of one of edgert's extras is missing; the message names the pip command that adds it."""


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (whitespace and newlines collapsed), or its type's name when empty."""
    return " ".join(str(exc).split()) or type(exc).__name__


class GalleryError(EdgertError, ValueError):
    """A face gallery that cannot be used: corrupted, of another embedding model or size, or a bad entry."""
