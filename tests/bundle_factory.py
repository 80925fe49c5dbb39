"""Real signed model bundles for tests: the digits int8 classifier, a golden set computed by running it.

```python
from bundle_factory import make_bundle
kit = make_bundle(tmp_path)                      # signed directory bundle + trusted-keys dir
kit = make_bundle(tmp_path, form="tar.gz", version="1.1.0", key=kit.private_key, trusted=kit.trusted)
verify_bundle(kit.bundle, kit.trusted, tmp_path / "staging")
```

The golden frames are held-out scikit-learn digits shown as 32 x 32 BGR frames; the expected top-1
classes are what the CPU backend gives for them through `Preprocessor` + `classify` (production's
path), so a canary on the CPU agrees on all of them.
"""
from __future__ import annotations

import io
import json
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from edgert.bundles.manifest import (
    Manifest,
    file_digest,
    manifest_bytes,
    manifest_from_template,
)
from edgert.bundles.packing import pack, write_signature
from edgert.bundles.signing import keygen, sign

DATA = Path(__file__).parent / "data"
DIGITS_MODEL = DATA / "digits_int8.tflite"
LABELS = [str(d) for d in range(10)]
#: How the digits model is fed (0..255 pixels to its 0..1 uint8 input).
DIGITS_INPUT = {"channel_order": "RGB", "resize": "stretch", "interpolation": "area", "mean": 0.0, "std": 255.0}
FRAME = 32


@dataclass(frozen=True)
class BundleKit:
    """A bundle and the keys around it.

    Attributes:
        bundle: The bundle: a directory, or a .tar / .tar.gz file.
        source: The directory the bundle was made from (model/, golden/, ...; no manifest).
        manifest: The manifest written into the bundle.
        private_key: The publisher's private key (PEM).
        public_key: Its public key (PEM), also copied into `trusted`.
        trusted: A trusted-keys directory holding `public_key`.
        key_name: Name of the key (`public_key`'s stem).
    """

    bundle: Path
    source: Path
    manifest: Manifest
    private_key: Path
    public_key: Path
    trusted: Path
    key_name: str


def golden_frames(count: int = 24) -> np.ndarray:
    """`count` held-out digits as uint8 BGR frames of FRAME x FRAME (nearest upscaling)."""
    digits = np.load(DATA / "digits_test.npz")["images"][:count]
    big = np.repeat(np.repeat(digits, FRAME // 8, axis=1), FRAME // 8, axis=2)
    return np.ascontiguousarray(np.stack([big] * 3, axis=-1))


@lru_cache(maxsize=8)
def _cpu_top1(model_bytes: bytes, count: int) -> tuple[int, ...]:
    import tempfile

    import edgert
    from edgert.postprocess import classify
    from edgert.preprocess import Preprocessor

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(model_bytes)
        with edgert.load(path, backend="cpu") as model:
            pre = Preprocessor(model.inputs[0], src_format="BGR", src_size=(FRAME, FRAME), **DIGITS_INPUT)
            return tuple(classify(model.run(pre(f))[0], model.outputs[0], top_k=1)[0][0] for f in golden_frames(count))


def cpu_top1(count: int = 24) -> np.ndarray:
    """Top-1 classes of the digits model on the CPU for `golden_frames(count)`."""
    return np.array(_cpu_top1(DIGITS_MODEL.read_bytes(), count), dtype=np.int64)


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def make_keys(folder: Path, name: str = "publisher") -> tuple[Path, Path, Path]:
    """A key pair in `folder`/keys and a trusted-keys directory `folder`/trusted-<name> holding the public key.

    Returns:
        (private key, public key, trusted dir).
    """
    private, public = keygen(Path(folder) / "keys", name)
    trusted = Path(folder) / f"trusted-{name}"
    trusted.mkdir(parents=True, exist_ok=True)
    shutil.copy(public, trusted / public.name)
    return private, public, trusted


def make_bundle(folder: Path, *, form: str = "dir", name: str = "digits", version: str = "1.0.0",
                private_key: Path | None = None, trusted: Path | None = None, signed: bool = True,
                model_bytes: bytes | None = None, expected: list[int] | None = None, golden: bool = True,
                golden_count: int = 24, agreement: float = 1.0, latency_budget_ms: float | None = None,
                variants: list[dict] | None = None, extra_files: dict[str, bytes] | None = None,
                template: dict | None = None) -> BundleKit:
    """Make a real bundle of the digits classifier under `folder`.

    Args:
        folder: Where the source dir, keys and bundle go (a fresh sub-folder per name/version/form).
        form: "dir", "tar" or "tar.gz".
        name, version: The manifest's name and version.
        private_key, trusted: Sign with this key (and report this trusted dir); default: a new key pair.
        signed: False leaves the bundle without manifest.sig.
        model_bytes: Contents of the cpu model file (default: the real digits int8 model; pass
            garbage for a model that hashes right but does not load).
        expected: Golden top-1 classes (default: what the CPU gives: a canary agrees on all).
        golden: False leaves out the golden set.
        golden_count, agreement, latency_budget_ms: The golden set's size and thresholds.
        variants: Manifest variants (default: one cpu variant ``model/digits_int8.tflite``); files of
            other variants must come in `extra_files`.
        extra_files: More files for the bundle: relative path -> content (listed in the manifest).
        template: Manifest keys to override (e.g. ``{"min_edgert": "9.0.0"}``).
    """
    folder = Path(folder)
    work = folder / f"{name}-{version}-{form}"
    source = work / "src"
    source.mkdir(parents=True)
    files = {"model/digits_int8.tflite": model_bytes if model_bytes is not None else DIGITS_MODEL.read_bytes()}
    if golden:
        files["golden/inputs.npz"] = _npz(images=golden_frames(golden_count))
        top1 = cpu_top1(golden_count) if expected is None else np.asarray(expected, dtype=np.int64)
        files["golden/expected.npz"] = _npz(top1=top1)
    files.update(extra_files or {})
    for rel, content in files.items():
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_bytes(content)

    data = {"name": name, "version": version, "task": "classification", "labels": LABELS, "input": DIGITS_INPUT,
            "decoder": {"top_k": 5}, "min_edgert": "0.1.0",
            "variants": variants or [{"backend": "cpu", "file": "model/digits_int8.tflite"}],
            "golden": {"inputs": "golden/inputs.npz", "expected": "golden/expected.npz", "agreement": agreement,
                       "latency_budget_ms": latency_budget_ms} if golden else None}
    data.update(template or {})
    manifest = manifest_from_template(data, {rel: file_digest(source / rel) for rel in files}, "bundle_factory")

    if private_key is None:
        private_key, public_key, trusted = make_keys(work, "publisher")
    else:
        public_key = private_key.with_suffix(".pub")
        trusted = trusted if trusted is not None else public_key.parent
    body = manifest_bytes(manifest)
    if form == "dir":
        bundle = work / "bundle"
        shutil.copytree(source, bundle)
        (bundle / "manifest.json").write_bytes(body)
        if signed:
            write_signature(bundle, sign(body, private_key))
    elif form in ("tar", "tar.gz"):
        bundle = pack(source, work / f"{name}-{version}.{form}", manifest=body)
        if signed:
            write_signature(bundle, sign(body, private_key))
    else:
        raise ValueError(f"form: dir, tar or tar.gz, not {form!r}")
    return BundleKit(bundle, source, manifest, private_key, public_key, Path(trusted), public_key.stem)


def manifest_dict(kit: BundleKit) -> dict:
    """The kit's manifest as plain JSON data (to edit and re-sign in tests)."""
    return json.loads(manifest_bytes(kit.manifest))
