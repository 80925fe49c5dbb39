"""Which variant of a bundle this device runs: by edgert's backend registry and the detected hardware."""
from __future__ import annotations

from edgert.backends import chooser
from edgert.core import hardware as hw
from edgert.core.errors import BundleError


def device_arch(backend: str, hardware) -> str | None:
    """The accelerator architecture a variant's ``arch`` must match, or None when it cannot be told.

    The RK NPU's SoC comes from the device tree ("rockchip,rk3588" -> "rk3588"). Hailo-8 and
    Hailo-8L share a PCI id, so their architecture is unknown until HailoRT opens the device: any
    hailo variant is accepted here and a mismatch fails in the canary, which loads the HEF.
    """
    if backend == "rknn":
        for compatible in hardware.soc:
            vendor, _, chip = compatible.partition(",")
            if vendor == "rockchip" and chip.startswith("rk"):
                return chip
    return None


def _describe(variants) -> str:
    return ", ".join(f"{v.backend} ({v.arch})" if v.arch else v.backend for v in variants)


def choose_variant(variants, backend: str = "auto", hardware=None):
    """The variant this device runs best.

    Args:
        variants: The manifest's `Variant` list.
        backend: "auto" (``EDGERT_BACKEND`` if set, else the usable backends by priority, cpu as
            the fallback) or a backend key.
        hardware: An `edgert.core.hardware.Hardware` (default: detected now).

    Raises:
        BundleError: no variant fits, naming the bundle's targets and what this device can run.
    """
    hardware = hardware if hardware is not None else hw.detect()
    keys = chooser.usable(backend, hardware)  # an unknown key: ConfigError listing the known ones
    backend, _ = chooser.requested_backend(backend)
    for key in keys:
        arch = device_arch(key, hardware)
        for variant in variants:
            if variant.backend == key and (arch is None or variant.arch in (None, arch)):
                return variant
    can_run = ", ".join(f"{k} ({device_arch(k, hardware)})" if device_arch(k, hardware) else k
                        for k in chooser.usable("auto", hardware)) or "nothing"
    asked = "" if backend == "auto" else f" with backend {backend}"
    raise BundleError(f"bundle has variants for {_describe(variants)}; this device can run{asked}: {can_run}")
