"""The `edgert` command.

Errors edgert raises on purpose (`EdgertError`) are printed as one line on stderr with exit code 2;
``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import sys

from edgert import __version__
from edgert.core.errors import EdgertError
from edgert.core.pixel_formats import SOURCE_FORMATS


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

    from edgert.backends.registry import backend_classes
    from edgert.core import hardware

    hw = hardware.detect(args.root, libraries=True)
    usable = {}
    for key, cls in sorted(backend_classes().items()):
        why = cls.probe(hw)
        usable[key] = ("usable" if cls.AUTOMATIC else "usable when named (never chosen by auto)") if why is None \
            else f"not usable: {why}"
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


def _setup_logging(level: str) -> None:
    import logging

    # journald stamps time and unit; the level is enough here.
    logging.basicConfig(level=getattr(logging, level.upper()), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")


def _check_seconds(seconds) -> None:
    import math

    from edgert.core.errors import ConfigError

    if seconds is not None and not (seconds > 0 and math.isfinite(seconds)):
        raise ConfigError(f"--seconds: expected a positive number of seconds, got {seconds}")


def _cmd_run(args) -> int:
    from edgert.service.daemon import Daemon

    _check_seconds(args.seconds)
    daemon = Daemon(args.config)
    _setup_logging(args.log_level or daemon.config.service.log_level)
    daemon.install_signal_handlers()
    return daemon.run(duration=args.seconds)


def _cmd_config_check(args) -> int:
    from edgert.core.errors import EdgertError
    from edgert.service.config import app_spec, load_config

    config = load_config(args.file)
    try:
        summary = app_spec(config.app).check(config)
    except EdgertError as exc:
        raise type(exc)(f"{args.file}: {exc}") from None
    print(f"{args.file}: ok ({summary})")
    return 0


def _cmd_demo(args) -> int:
    from edgert.core.errors import ConfigError

    _check_seconds(args.seconds)
    if args.scene == "surveillance":
        from edgert.cli.demo_surveillance import DEFAULT_SEED, run_surveillance_demo

        if args.frames is not None and args.frames < 1:
            raise ConfigError(f"--frames: expected at least 1 frame, got {args.frames}")
        if args.fps is not None and not 0 <= args.fps <= 1000:
            raise ConfigError(f"--fps: expected 0 (unpaced) to 1000, got {args.fps}")
        seconds = args.seconds if args.seconds is not None or args.frames is not None else 20.0
        _setup_logging("warning")
        return run_surveillance_demo(seconds=seconds, frames=args.frames, cameras=args.cameras or 2,
                                     seed=DEFAULT_SEED if args.seed is None else args.seed, fps=args.fps,
                                     keep=args.keep, as_json=args.json)
    from edgert.cli.demo import run_demo

    for name in ("frames", "cameras", "fps", "json"):
        if getattr(args, name) not in (None, False):
            raise ConfigError(f"--{name}: an option of `edgert demo surveillance`, not of the kiosk demo")
    _setup_logging("warning")
    return run_demo(seconds=20.0 if args.seconds is None else args.seconds,
                    seed=2026 if args.seed is None else args.seed, keep=args.keep)


def _cmd_install(args) -> int:
    from edgert.service.install import install, next_steps

    written = install(args.root, board=args.board, user=args.user, force=args.force)
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"{args.root}: already up to date")
    for step in next_steps(args.root):
        print(f"next: {step}")
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

    run = sub.add_parser("run", help="run the kiosk service in the foreground (logs on stderr)")
    run.add_argument("--config", default="/etc/edgert/edgert.yaml", help="config file (default: %(default)s)")
    run.add_argument("--seconds", type=float, default=None, help="stop after this long (default: run until stopped)")
    run.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default=None,
                     help="override the config's service.log_level")
    run.set_defaults(func=_cmd_run)

    config = sub.add_parser("config", help="config files")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a config file and say what is wrong")
    check.add_argument("file")
    check.set_defaults(func=_cmd_config_check)

    demo = sub.add_parser("demo", help="run the whole kiosk on a synthetic conveyor, or (`demo surveillance`) "
                          "the surveillance app on a rendered street (no camera, no accelerator)")
    demo.add_argument("scene", nargs="?", choices=("kiosk", "surveillance"), default="kiosk",
                      help="which product (default: %(default)s)")
    demo.add_argument("--seconds", type=float, default=None, help="how long to run (default: 20)")
    demo.add_argument("--seed", type=int, default=None, help="scene seed (default: 2026 kiosk, 7 surveillance)")
    demo.add_argument("--keep", default=None, metavar="DIR", help="keep the journal in DIR (default: a temp dir)")
    demo.add_argument("--frames", type=int, default=None, metavar="N",
                      help="surveillance: stop after N frames per camera (with no --seconds: run until then)")
    demo.add_argument("--cameras", type=int, default=None, metavar="K", help="surveillance: street cameras (1-3, "
                      "default 2)")
    demo.add_argument("--fps", type=float, default=None, help="surveillance: frames per second each camera "
                      "renders (0: as fast as the app takes them; default 15)")
    demo.add_argument("--json", action="store_true", help="surveillance: print the summary as JSON only")
    demo.set_defaults(func=_cmd_demo)

    inst = sub.add_parser("install", help="lay the unit, udev rules, example config and state dir into a root")
    inst.add_argument("--root", required=True, help="target root directory ('/' on the device)")
    inst.add_argument("--board", default=None, help="board whose firmware notes to include (rpi5, rock5b)")
    inst.add_argument("--user", default="edgert", help="service user (default: %(default)s)")
    inst.add_argument("--force", action="store_true", help="replace unit and rules that differ (never the config)")
    inst.set_defaults(func=_cmd_install)

    from edgert.cli.bench import register as register_bench

    register_bench(sub)

    from edgert.cli.quantize import register as register_quantize

    register_quantize(sub)

    from edgert.cli.faces import register as register_faces

    register_faces(sub)

    from edgert.cli.events import register as register_events

    register_events(sub)

    model = sub.add_parser("model", help="signed model bundles and the on-device model store")
    model_sub = model.add_subparsers(dest="model_command", required=True)
    from edgert.cli.bundle import register as register_bundle
    from edgert.cli.model import register as register_store

    register_bundle(model_sub)
    register_store(model_sub)
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
