"""The `edgert` command.

Errors edgert raises on purpose (`EdgertError`) are printed as one line on stderr with exit code 2;
``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import sys

from edgert import __version__
from edgert.errors import EdgertError
from edgert.pixel_formats import SOURCE_FORMATS


def _cmd_version(args) -> int:
    import numpy as np

    from edgert._ext import preprocess as kernel

    print(f"edgert {__version__} (numpy {np.__version__}, kernels {kernel.__file__})")
    return 0


def _cmd_formats(args) -> int:
    print("\n".join(SOURCE_FORMATS))
    return 0


def _cmd_info(args) -> int:
    import json

    from edgert import hardware
    from edgert.backends.registry import backend_classes

    hw = hardware.detect(args.root, libraries=True)
    usable = {}
    for key, cls in sorted(backend_classes().items()):
        why = cls.probe(hw)
        usable[key] = "usable" if why is None else f"not usable: {why}"
    if args.json:
        print(json.dumps({"hardware": hw.as_dict(), "backends": usable}, indent=2))
        return 0
    print(f"board: {hw.board}")
    for label, found in (("hailo", hw.hailo), ("coral pcie", hw.coral_pcie), ("coral usb", hw.coral_usb),
                         ("rk npu", hw.rknpu)):
        print(f"{label}: {', '.join(found) if found else 'none'}")
    print("sdks: " + (", ".join(f"{k} {v}" for k, v in hw.sdks.items()) or "none"))
    for key, state in usable.items():
        print(f"backend {key}: {state}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgert", description="On-device inference runtime.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("version", help="print versions and where the compiled kernels live").set_defaults(
        func=_cmd_version)
    sub.add_parser("formats", help="list the source pixel formats").set_defaults(func=_cmd_formats)
    info = sub.add_parser("info", help="detected accelerators, SDK versions and usable backends")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.add_argument("--root", default=None, help="read sysfs, /dev and /proc below this directory "
                      "(default: $EDGERT_HW_ROOT or /)")
    info.set_defaults(func=_cmd_info)
    return parser


def main(argv=None) -> int:
    """Entry point of the `edgert` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EdgertError as exc:
        if args.debug:
            raise
        print(f"edgert: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
