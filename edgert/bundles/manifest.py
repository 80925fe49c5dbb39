"""The bundle manifest: what a model bundle holds and how to run it, in canonical JSON.

``manifest.json`` names the model (slug + semantic version), its task and labels, how frames become
inputs, one variant per target (cpu .tflite, onnx .onnx, coral _edgetpu.tflite, hailo .hef, rknn .rknn), an
optional golden set for the canary, and the sha256 and size of every other file of the bundle.
``manifest.sig`` is an Ed25519 signature over the manifest's exact bytes (see `edgert.bundles.signing`).
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from edgert.core.errors import BundleError
from edgert.core.settings import Section

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
#: A manifest larger than this is refused before parsing (a real one is a few kB).
MAX_MANIFEST_BYTES = 1 << 20

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                     r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
                     r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$")
_NAME = r"^[a-z0-9][a-z0-9_-]*$"
_MODEL_SUFFIXES = {"cpu": (".tflite",), "onnx": (".onnx",), "coral": (".tflite",), "hailo": (".hef",),
                   "rknn": (".rknn",)}
_HAILO_ARCHS = ("hailo8", "hailo8l")
_RKNN_ARCH = re.compile(r"^rk\d{4}[a-z]?$|^rv\d{4}[a-z]?$")


def version_key(version: str) -> tuple:
    """A sort key giving semantic-version precedence ("1.2.0-rc.1" < "1.2.0" < "1.10.0").

    Raises:
        BundleError: `version` is not a semantic version.
    """
    match = _SEMVER.match(version)
    if match is None:
        raise BundleError(f"{version!r} is not a semantic version (expected MAJOR.MINOR.PATCH, e.g. 1.2.3)")
    core = tuple(int(match.group(i)) for i in (1, 2, 3))
    pre = match.group(4)
    if pre is None:
        return core + (1, ())
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return core + (0, parts)


def check_relative_path(path: str) -> str:
    """`path` if it is a plain relative POSIX path inside a bundle (no absolute, no ``..``, no ``.``)."""
    if not path or "\\" in path or "\x00" in path:
        raise ValueError(f"{path!r} is not a plain relative path")
    pure = PurePosixPath(path)
    if pure.is_absolute() or any(part in ("..", ".", "") for part in path.split("/")):
        raise ValueError(f"{path!r} must be relative, without '..' or '.' parts")
    return path


class InputConfig(Section):
    """How camera frames become model inputs (the `Preprocessor` settings of the model)."""

    channel_order: Literal["RGB", "BGR"] = Field("RGB", description="Channel order the model expects.")
    resize: Literal["stretch", "letterbox", "center-crop"] = Field("stretch", description="Resize mode.")
    interpolation: Literal["bilinear", "area", "nearest"] = Field("bilinear", description="Resampling filter.")
    mean: float | list[float] = Field(0.0, description="Per-channel mean in 0..255 units (1 or 3 values).")
    std: float | list[float] = Field(1.0, description="Per-channel divisor in 0..255 units (1 or 3 values).")
    pad_value: float | list[float] = Field(114.0, description="Letterbox fill in 0..255 units (1 or 3 values).")
    pixel_centers: Literal["half", "corner"] = Field(
        "half", description="Pixel-centre convention the model was trained behind: half (OpenCV resize) or corner "
                            "(warpAffine, MediaPipe).")

    @field_validator("mean", "std", "pad_value")
    @classmethod
    def _one_or_three(cls, value):
        if isinstance(value, list) and len(value) not in (1, 3):
            raise ValueError(f"expected 1 or 3 values, got {len(value)}")
        return value

    @field_validator("std")
    @classmethod
    def _nonzero(cls, value):
        if any(v == 0 for v in (value if isinstance(value, list) else [value])):
            raise ValueError("std must not be zero")
        return value

    def preprocess_kwargs(self) -> dict:
        """Keyword arguments for `edgert.preprocess.Preprocessor` (besides spec, src_format, src_size)."""
        return {k: (tuple(v) if isinstance(v, list) else v) for k, v in self.model_dump().items()}


class Variant(Section):
    """One compiled form of the model for one kind of target."""

    backend: Literal["cpu", "onnx", "coral", "hailo", "rknn"] = Field(..., description="Backend key that runs this file.")
    file: str = Field(..., description="Model file, relative path inside the bundle.")
    arch: str | None = Field(None, description="Target chip: hailo8/hailo8l for hailo, the SoC (rk3588, ...) for rknn.")
    options: dict[str, Any] = Field(default_factory=dict, description="Backend options (e.g. rknn input_shape).")

    @field_validator("file")
    @classmethod
    def _relative(cls, value: str) -> str:
        return check_relative_path(value)

    @model_validator(mode="after")
    def _fits_backend(self):
        suffixes = _MODEL_SUFFIXES[self.backend]
        if not self.file.endswith(suffixes):
            raise ValueError(f"a {self.backend} variant needs a {' or '.join(suffixes)} file, got {self.file!r}")
        if self.backend == "hailo" and self.arch not in _HAILO_ARCHS:
            raise ValueError(f"a hailo variant needs arch {' or '.join(_HAILO_ARCHS)}, got {self.arch!r}")
        if self.backend == "rknn" and (self.arch is None or not _RKNN_ARCH.match(self.arch)):
            raise ValueError(f"an rknn variant needs arch naming the SoC (rk3588, rk3576, ...), got {self.arch!r}")
        if self.backend in ("cpu", "onnx", "coral") and self.arch is not None:
            raise ValueError(f"a {self.backend} variant takes no arch, got {self.arch!r}")
        return self



class Golden(Section):
    """The canary's golden set: frames and the top-1 class the model must give for them."""

    inputs: str = Field(..., description="Relative path of an .npz with 'images': uint8 BGR frames N x H x W x 3.")
    expected: str = Field(..., description="Relative path of an .npz with 'top1': int array N.")
    agreement: float = Field(..., ge=0.0, le=1.0, description="Fraction of golden frames whose top-1 must match.")
    latency_budget_ms: float | None = Field(None, gt=0, description="p50 ms per frame on the chosen backend.")

    @field_validator("inputs", "expected")
    @classmethod
    def _relative(cls, value: str) -> str:
        return check_relative_path(value)


class FileEntry(Section):
    """Size and digest of one bundle file."""

    sha256: str = Field(..., pattern=r"^[0-9a-f]{64}$", description="Lower-case hex SHA-256 of the file.")
    size: int = Field(..., ge=0, description="Size in bytes.")


class Manifest(Section):
    """Everything a device needs to know about a bundle before trusting and running it."""

    format_version: Literal[1] = Field(..., description="Manifest format version (1).")
    name: str = Field(..., pattern=_NAME, max_length=64, description="Model name: a slug [a-z0-9][a-z0-9_-]*.")
    version: str = Field(..., description="Semantic version of this model, e.g. 1.2.3.")
    task: Literal["classification", "detection", "embedding"] = Field(..., description="What the model does.")
    labels: list[str] = Field(default_factory=list, description="Class names in output order.")
    input: InputConfig = Field(default_factory=InputConfig, description="Preprocessing settings.")
    decoder: dict[str, Any] = Field(default_factory=dict, description="Decoder settings (task specific).")
    variants: list[Variant] = Field(..., min_length=1, description="One model file per target.")
    min_edgert: str = Field(..., description="Oldest edgert version that can run this bundle.")
    golden: Golden | None = Field(None, description="Golden set checked by the canary before activation.")
    files: dict[str, FileEntry] = Field(..., description="Every bundle file but manifest.json/.sig: path -> digest.")

    @field_validator("version", "min_edgert")
    @classmethod
    def _semver(cls, value: str) -> str:
        if not _SEMVER.match(value):
            raise ValueError(f"expected a semantic version MAJOR.MINOR.PATCH (e.g. 1.2.3), got {value!r}")
        return value

    @field_validator("files")
    @classmethod
    def _paths(cls, value: dict) -> dict:
        for path in value:
            check_relative_path(path)
            if path in (MANIFEST_NAME, SIGNATURE_NAME):
                raise ValueError(f"{path} cannot be listed in files")
        return value

    @model_validator(mode="after")
    def _consistent(self):
        seen = set()
        for variant in self.variants:
            if variant.file not in self.files:
                raise ValueError(f"variant file {variant.file!r} is not listed in files")
            target = (variant.backend, variant.arch)
            if target in seen:
                raise ValueError(f"two variants for {variant.backend}" + (f" ({variant.arch})" if variant.arch else ""))
            seen.add(target)
        if self.golden is not None:
            for path in (self.golden.inputs, self.golden.expected):
                if path not in self.files:
                    raise ValueError(f"golden file {path!r} is not listed in files")
        if self.task == "classification" and not self.labels:
            raise ValueError("a classification bundle needs labels")
        return self

    def total_size(self) -> int:
        """Bytes of all listed files (the unpacked size, manifest and signature aside)."""
        return sum(entry.size for entry in self.files.values())


def _format_loc(loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else ("." if text else "") + str(part)
    return text or "(top level)"


def _describe(error: dict) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required key is missing"
    msg = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    if error["type"] != "value_error" and value is not None and not isinstance(value, (dict, list)):
        return f"{msg} (got {value!r})"
    return msg


def _no_duplicate_keys(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise BundleError(f"key {key!r} given twice")
        out[key] = value
    return out


def parse_manifest(data: bytes, source: str) -> Manifest:
    """Validate manifest bytes.

    Args:
        data: The exact bytes of manifest.json.
        source: Where they came from, for the message (e.g. "bundle.tar: manifest.json").

    Raises:
        BundleError: one line naming the source, the key path and what was expected.
    """
    if len(data) > MAX_MANIFEST_BYTES:
        raise BundleError(f"{source}: manifest is {len(data)} bytes, more than {MAX_MANIFEST_BYTES}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(f"{source}: manifest is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        raw = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except BundleError as exc:
        raise BundleError(f"{source}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{source}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(raw, dict):
        raise BundleError(f"{source}: a manifest must be a JSON object, got {type(raw).__name__}")
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise BundleError(f"{source}: {_format_loc(errors[0]['loc'])}: {_describe(errors[0])}{more}") from None


def manifest_bytes(manifest: Manifest) -> bytes:
    """Canonical JSON of a manifest: sorted keys, no spaces, UTF-8, one trailing newline."""
    text = json.dumps(manifest.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    return text.encode("utf-8") + b"\n"


def file_digest(path: Path) -> FileEntry:
    """SHA-256 and size of a file, read in chunks."""
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256")
        size = f.tell()
    return FileEntry(sha256=digest.hexdigest(), size=size)


def manifest_from_template(template: dict, files: dict[str, FileEntry], source: str) -> Manifest:
    """A manifest from a template (everything but ``files``) and the digests of the bundle's files.

    ``format_version`` defaults to the current one; a ``files`` key in the template is replaced.

    Raises:
        BundleError: the result does not validate (key path named).
    """
    data = dict(template)
    data.setdefault("format_version", FORMAT_VERSION)
    data["files"] = {path: entry.model_dump() for path, entry in sorted(files.items())}
    return parse_manifest(json.dumps(data).encode("utf-8"), source)
