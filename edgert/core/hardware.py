"""What accelerators and board this machine has, read from sysfs, /dev and /proc.

Every path is read below `root` (default: ``$EDGERT_HW_ROOT`` or "/"), so tests point detection at a
fake tree.
"""
from __future__ import annotations

import ctypes.util
import os
import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

#: USB ids of the Coral USB Accelerator: before its firmware is loaded, and after.
CORAL_USB_IDS = (("1a6e", "089a"), ("18d1", "9302"))

#: Rockchip SoCs with an NPU that librknnrt drives.
RKNPU_SOCS = ("rockchip,rk3588", "rockchip,rk3576", "rockchip,rk3568", "rockchip,rk3566", "rockchip,rk3562")

SDK_PACKAGES = ("ai-edge-litert", "tflite-runtime", "onnxruntime", "hailort", "rknn-toolkit-lite2", "pycoral", "picamera2",
                "gpiozero")


@dataclass(frozen=True)
class Hardware:
    """Detected hardware.

    Attributes:
        board: Board model (device tree), or the machine type where there is none.
        soc: SoC compatible strings from the device tree.
        hailo: Hailo device nodes (/dev/hailoN) or sysfs entries found.
        coral_pcie: Coral PCIe/M.2 nodes (/dev/apex_N).
        coral_usb: Coral USB accelerators (sysfs USB device directories).
        rknpu: RK NPU evidence (device-tree compatible, device nodes).
        sdks: Installed SDK/runtime versions by package name.
        libedgetpu: Path or name of libedgetpu if the loader finds it.
    """

    board: str
    soc: tuple = ()
    hailo: tuple = ()
    coral_pcie: tuple = ()
    coral_usb: tuple = ()
    rknpu: tuple = ()
    sdks: dict = field(default_factory=dict)
    libedgetpu: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _read(path: Path) -> str:
    try:
        return path.read_bytes().replace(b"\x00", b"\n").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def detect(root=None, libraries: bool = False) -> Hardware:
    """Detect the hardware below `root` (default: ``$EDGERT_HW_ROOT`` or "/").

    `libraries` also asks the dynamic loader for libedgetpu (slow: it runs ldconfig).
    """
    root = root if root is not None else os.environ.get("EDGERT_HW_ROOT", "/")
    r = Path(root)
    model = _read(r / "proc/device-tree/model")
    compatible = tuple(s for s in _read(r / "proc/device-tree/compatible").split("\n") if s)
    hailo = sorted({str(p.relative_to(r)) for p in (r / "dev").glob("hailo[0-9]*")}
                   | {str(p.relative_to(r)) for p in (r / "sys/class/hailo_chardev").glob("hailo*")})
    apex = sorted(str(p.relative_to(r)) for p in (r / "dev").glob("apex_[0-9]*"))
    usb = []
    for dev in sorted((r / "sys/bus/usb/devices").glob("*")):
        ids = (_read(dev / "idVendor").lower(), _read(dev / "idProduct").lower())
        if ids in CORAL_USB_IDS:
            usb.append(f"{dev.name} ({ids[0]}:{ids[1]})")
    rknpu = []
    npu_soc = next((c for c in compatible if c.startswith(RKNPU_SOCS)), None)
    if npu_soc:
        rknpu.append(f"device-tree: {npu_soc}")
        rknpu += sorted(str(p.relative_to(r)) for p in (r / "sys/class/devfreq").glob("*.npu"))
        rknpu += sorted(str(p.relative_to(r)) for p in (r / "dev/dri").glob("renderD*"))
    sdks = {}
    for name in SDK_PACKAGES:
        try:
            sdks[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return Hardware(board=model or platform.machine(), soc=compatible, hailo=tuple(hailo), coral_pcie=tuple(apex),
                    coral_usb=tuple(usb), rknpu=tuple(rknpu), sdks=sdks,
                    libedgetpu=ctypes.util.find_library("edgetpu") if libraries and str(root) == "/" else None)
