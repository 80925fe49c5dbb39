"""Device context of a bench run: board, CPU, governors, frequencies, temperatures, throttling, versions.

Everything is read below `root` (default: ``$EDGERT_HW_ROOT`` or "/"), so tests point it at a fake
sysfs/procfs tree, as `edgert.core.hardware.detect` does. Throttling on a Raspberry Pi comes from
``vcgencmd get_throttled`` (found on PATH, run with a short timeout) or the firmware's sysfs file.
Nothing here touches the network.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import re
import shutil
import signal
import subprocess
from importlib import metadata
from pathlib import Path

#: Packages whose versions are recorded with every run (absent ones are left out).
VERSION_PACKAGES = ("edgert", "numpy", "ai-edge-litert", "tflite-runtime", "onnxruntime", "hailort", "rknn-toolkit-lite2", "pycoral")

#: Bits of ``vcgencmd get_throttled``: bit -> name; the same name at bit + 16 means "since boot".
THROTTLE_BITS = {0: "under-voltage", 1: "arm frequency capped", 2: "throttled", 3: "soft temperature limit"}

#: A temperature (degrees C) above this during a run is worth a warning: the Pi 5 firmware starts
#: throttling at 80-85 C, RK3588 boards at 85 C.
TEMP_WARN_C = 80.0

#: A CPU whose frequency fell by more than this fraction between two samples gets a warning.
FREQ_DROP = 0.10

VCGENCMD_TIMEOUT_S = 2.0

# ARM "CPU part" ids of the cores found on the boards edgert targets (/proc/cpuinfo has no model name there).
_ARM_PARTS = {"0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
              "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
              "0xd0d": "Cortex-A77", "0xd41": "Cortex-A78"}


def _root(root) -> Path:
    return Path(root if root is not None else os.environ.get("EDGERT_HW_ROOT", "/"))


def _read(path: Path) -> str:
    try:
        return path.read_bytes().replace(b"\x00", b"\n").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _int(text: str) -> int | None:
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def board_model(root=None) -> str:
    """Board name: device tree model, else DMI product name, else the machine type."""
    r = _root(root)
    for path in ("proc/device-tree/model", "sys/firmware/devicetree/base/model", "sys/class/dmi/id/product_name"):
        text = _read(r / path).split("\n")[0].strip()
        if text and text.lower() not in ("to be filled by o.e.m.", "system product name"):
            return text
    return platform.machine()


def cpu_model(root=None) -> str:
    """CPU model from /proc/cpuinfo: "model name" (x86), else the ARM core types ("4x Cortex-A76 + 4x Cortex-A55")."""
    info = _read(_root(root) / "proc/cpuinfo")
    names = re.findall(r"^model name\s*:\s*(.+)$", info, re.M)
    if names:
        return names[0].strip()
    parts = re.findall(r"^CPU part\s*:\s*(\S+)$", info, re.M)
    if not parts:
        return platform.processor() or platform.machine()
    counts: dict = {}
    for p in parts:
        name = _ARM_PARTS.get(p.lower(), f"ARM part {p}")
        counts[name] = counts.get(name, 0) + 1
    return " + ".join(f"{n}x {name}" for name, n in counts.items())


def _cpu_dirs(r: Path) -> list:
    dirs = [p for p in (r / "sys/devices/system/cpu").glob("cpu[0-9]*") if p.name[3:].isdigit()]
    return sorted(dirs, key=lambda p: int(p.name[3:]))


def cpu_count(root=None) -> int:
    """Number of CPUs: sysfs cpuN folders, else /proc/cpuinfo processors, else os.cpu_count()."""
    r = _root(root)
    n = len(_cpu_dirs(r)) or len(re.findall(r"^processor\s*:", _read(r / "proc/cpuinfo"), re.M))
    return n or os.cpu_count() or 1


def cpu_frequencies(root=None) -> dict:
    """Per CPU with cpufreq: ``{"cpu0": {"governor", "cur_mhz", "max_mhz"}}`` (missing values are None)."""
    out = {}
    for cpu in _cpu_dirs(_root(root)):
        freq = cpu / "cpufreq"
        if not freq.is_dir():
            continue
        cur = _int(_read(freq / "scaling_cur_freq")) or _int(_read(freq / "cpuinfo_cur_freq"))
        top = _int(_read(freq / "cpuinfo_max_freq"))
        out[cpu.name] = {"governor": _read(freq / "scaling_governor") or None,
                         "cur_mhz": round(cur / 1000, 1) if cur else None,
                         "max_mhz": round(top / 1000, 1) if top else None}
    return out


def temperatures(root=None) -> dict:
    """Thermal zones: ``{type: degrees C}`` (a repeated type gets the zone name appended)."""
    out = {}
    zones = sorted((_root(root) / "sys/class/thermal").glob("thermal_zone*"), key=lambda p: p.name)
    for zone in zones:
        milli = _int(_read(zone / "temp"))
        if milli is None:
            continue
        name = _read(zone / "type") or zone.name
        if name in out:
            name = f"{name} ({zone.name})"
        out[name] = round(milli / 1000, 1)
    return out


def parse_throttled(value: int | str) -> dict:
    """Decode the ``get_throttled`` bit field ("throttled=0x50005", "0x50005" or an int).

    Returns:
        ``{"raw": "0x50005", "now": [names], "since_boot": [names]}``.
    """
    if isinstance(value, str):
        text = value.strip().split("=")[-1].strip()
        bits = int(text, 16)
    else:
        bits = int(value)
    return {"raw": hex(bits),
            "now": [name for bit, name in THROTTLE_BITS.items() if bits >> bit & 1],
            "since_boot": [name for bit, name in THROTTLE_BITS.items() if bits >> (bit + 16) & 1]}


def throttling(root=None) -> dict | None:
    """Raspberry Pi throttling from ``vcgencmd get_throttled`` (on PATH), else the firmware's sysfs file, else None."""
    exe = shutil.which("vcgencmd")
    if exe:
        out = _run_briefly([exe, "get_throttled"])
        if out and "throttled=" in out:
            try:
                return {**parse_throttled(out), "source": "vcgencmd"}
            except ValueError:
                pass
    for path in sorted((_root(root) / "sys/devices/platform").glob("soc*/*firmware/get_throttled")):
        try:
            return {**parse_throttled(_read(path)), "source": "sysfs"}
        except ValueError:
            continue
    return None


def _run_briefly(argv: list) -> str | None:
    """stdout of a command, or None if it fails or outlasts `VCGENCMD_TIMEOUT_S` (its process group is killed)."""
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                text=True, start_new_session=True)
    except OSError:
        return None
    try:
        out, _ = proc.communicate(timeout=VCGENCMD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        # A wrapper script's children would keep the pipe open after the script itself is killed.
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None
    return out if proc.returncode == 0 else None


def sample_thermal(root=None) -> dict:
    """The cheap part of the context, to sample before and after a run.

    Returns:
        ``{"cpufreq": cpu_frequencies(), "temperatures_c": temperatures(), "throttled": throttling()}``.
    """
    return {"cpufreq": cpu_frequencies(root), "temperatures_c": temperatures(root), "throttled": throttling(root)}


def package_versions() -> dict:
    """Versions of edgert, Python, NumPy and the runtimes/SDKs present."""
    out = {"python": platform.python_version()}
    for name in VERSION_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    if "edgert" not in out:
        import edgert

        out["edgert"] = edgert.__version__
    return out


def file_sha256(path) -> str:
    """Hex SHA-256 of a file."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def device_context(root: str | Path | None = None, model_path=None) -> dict:
    """Everything that explains a bench run's numbers on this device.

    Args:
        root: Filesystem root to read sysfs/procfs below (default ``$EDGERT_HW_ROOT`` or "/").
        model_path: The model file; its SHA-256 is recorded when given.

    Returns:
        A JSON-ready dict: board, cpu_model, cpu_count, kernel, os, versions, model_sha256 (with
        `model_path`), and the `sample_thermal` keys cpufreq, temperatures_c and throttled.
    """
    r = _root(root)
    os_release = re.search(r'^PRETTY_NAME="?([^"\n]*)"?$', _read(r / "etc/os-release"), re.M)
    ctx = {"board": board_model(r), "cpu_model": cpu_model(r), "cpu_count": cpu_count(r),
           "kernel": _read(r / "proc/sys/kernel/osrelease") or platform.release(),
           "os": os_release.group(1) if os_release else "", "versions": package_versions()}
    if model_path is not None:
        ctx["model"] = Path(model_path).name
        ctx["model_sha256"] = file_sha256(model_path)
    ctx.update(sample_thermal(r))
    return ctx


def warnings(before: dict, after: dict) -> list[str]:
    """What makes the numbers of a run suspect, from context samples taken before and after it.

    Args:
        before: `device_context` or `sample_thermal` before the run.
        after: The same after the run.

    Returns:
        One-line warnings: a governor other than "performance", throttling or under-voltage that
        happened during the run (or is active at its end), a temperature above `TEMP_WARN_C`, a CPU
        frequency that dropped.
    """
    out = []
    freqs_after = after.get("cpufreq") or {}
    slow = {}
    for cpu, f in freqs_after.items():
        gov = f.get("governor")
        if gov and gov != "performance":
            slow.setdefault(gov, []).append(cpu)
    for gov, cpus in slow.items():
        out.append(f'CPU governor is "{gov}" on {_cpu_list(cpus)}, not "performance": '
                   "frequencies may change during the run")
    t_old, t_new = before.get("throttled") or {}, after.get("throttled") or {}
    new_events = [n for n in t_new.get("since_boot", []) if n not in t_old.get("since_boot", [])]
    if new_events:
        out.append(f"the SoC reported {', '.join(new_events)} during the run (get_throttled {t_new.get('raw')})")
    active = [n for n in t_new.get("now", []) if n not in new_events]
    if active:
        out.append(f"{', '.join(active)} active at the end of the run (get_throttled {t_new.get('raw')})")
    for zone, temp in (after.get("temperatures_c") or {}).items():
        if temp > TEMP_WARN_C:
            out.append(f"temperature {zone} at {temp:.1f} C (above {TEMP_WARN_C:.0f} C): the SoC may throttle")
    freqs_before = before.get("cpufreq") or {}
    for cpu, f in freqs_after.items():
        old, new = (freqs_before.get(cpu) or {}).get("cur_mhz"), f.get("cur_mhz")
        if old and new and new < old * (1 - FREQ_DROP):
            out.append(f"{cpu} frequency dropped from {old:.0f} to {new:.0f} MHz during the run")
    return out


def _cpu_list(cpus: list) -> str:
    nums = sorted(int(c[3:]) for c in cpus if c[3:].isdigit())
    if len(nums) == len(cpus) and len(nums) > 1 and nums == list(range(nums[0], nums[-1] + 1)):
        return f"cpu{nums[0]}-{nums[-1]}"
    return ", ".join(cpus)
