"""`edgert model install | list | activate | rollback | remove`: the device's model store from the shell.

The store lives in ``<state dir>/models`` (the kiosk config's ``store.path`` below its
``service.state_dir``); bundles must be signed by a key in the trusted-keys directory. Both come
from ``--config FILE`` when given, and ``--state-dir`` / ``--trusted`` override them. Every command
first cleans what an interrupted install left (`ModelStore.recover`, under the store lock).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgert.core.errors import BundleError

DEFAULT_STATE_DIR = Path("/var/lib/edgert")
DEFAULT_TRUSTED = Path("/etc/edgert/trusted-keys")


def _store(args):
    from edgert.bundles.store import ModelStore, StoreConfig

    state_dir, config = DEFAULT_STATE_DIR, StoreConfig()
    if args.config is not None:
        from edgert.service.config import load_config

        service = load_config(args.config)
        state_dir = service.service.state_dir
        config = service.store
    if args.state_dir is not None:
        state_dir = args.state_dir
    if args.trusted is not None:
        config = config.model_copy(update={"trusted_keys": args.trusted})
    return ModelStore.from_config(config, state_dir)


def _variants(installed) -> str:
    return ", ".join(f"{v.backend} ({v.arch})" if v.arch else v.backend for v in installed.manifest.variants)


def _fetch(url: str, args, store) -> Path:
    """Download a bundle URL into the store's downloads folder, with a progress bar (resumes a cut download)."""
    from edgert.bench.report import Progress
    from edgert.fleet.download import download

    if not args.sha256:
        raise BundleError("install from a URL needs --sha256 (the bundle's published digest)")
    dest = Path(store.root).parent / "downloads" / Path(url.split("?")[0]).name
    bar = Progress("download")
    try:
        return download(url, dest, expected_sha256=args.sha256,
                        progress=lambda done, total: bar(done, total or max(done, 1)))
    finally:
        bar.close()


def _cmd_install(args) -> int:
    store = _store(args)
    bundle = args.bundle
    fetched = None
    if str(bundle).startswith(("http://", "https://")):
        bundle = fetched = _fetch(str(bundle), args, store)
    try:
        installed = store.install(bundle, activate=not args.no_activate, backend=args.backend,
                                  allow_downgrade=args.allow_downgrade)
    finally:
        if fetched is not None:
            fetched.unlink(missing_ok=True)
    state = "installed, not active" if args.no_activate else "current"
    if store.last_install_identical:
        state = "already installed, identical" + ("" if args.no_activate else "; current")
    print(f"{installed.name} {installed.version}: {state} ({installed.path})")
    report = store.last_canary
    if report is not None:
        golden = (f"{report.matches}/{report.frames} golden images agree ({report.agreement:.3f}, "
                  f"required {report.required:.3f})" if report.required is not None else "no golden set")
        budget = f" (budget {report.budget_ms:g} ms)" if report.budget_ms is not None else ""
        print(f"canary on {report.backend}: {golden}, p50 {report.p50_ms:.2f} ms per frame{budget}")
    return 0


def _listing(store, names) -> list[dict]:
    models = []
    for name in names:
        current, previous = store.current(name), store.previous(name)
        models.append({
            "name": name,
            "current": current.version if current else None,
            "previous": previous.version if previous else None,
            "versions": [{"version": v.version, "path": str(v.path), "variants": _variants(v),
                          "task": v.manifest.task} for v in store.versions(name)],
        })
    return models


def _cmd_list(args) -> int:
    store = _store(args)
    store.recover()
    models = _listing(store, [args.name] if args.name else store.names())
    if args.json:
        print(json.dumps({"store": str(store.root), "models": models}, indent=2))
        return 0
    if not models:
        print(f"no models installed in {store.root}")
    for model in models:
        print(model["name"])
        for v in reversed(model["versions"]):
            mark = "current" if v["version"] == model["current"] else (
                "previous" if v["version"] == model["previous"] else "")
            print(f"  {v['version']:<12} {mark:<9} {v['task']:<15} {v['variants']}")
    return 0


def _cmd_activate(args) -> int:
    installed = _store(args).activate(args.name, args.version)
    print(f"{installed.name}: current is now {installed.version}")
    return 0


def _cmd_rollback(args) -> int:
    installed = _store(args).rollback(args.name)
    print(f"{installed.name}: rolled back, current is now {installed.version}")
    return 0


def _cmd_remove(args) -> int:
    _store(args).remove(args.name, args.version)
    print(f"{args.name} {args.version}: removed")
    return 0


def _store_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="kiosk config file: take the state dir and store settings "
                                                    "from it")
    common.add_argument("--state-dir", type=Path, help=f"service state directory (default {DEFAULT_STATE_DIR}; "
                                                       "the store is its models/ subdirectory)")
    common.add_argument("--trusted", type=Path, help=f"directory of trusted public keys (default {DEFAULT_TRUSTED})")
    return common


def register(subparsers) -> None:
    """Add install, list, activate, rollback and remove to the ``edgert model`` subparsers."""
    common = _store_options()
    p = subparsers.add_parser("install", parents=[common], help="verify, canary-check and install a signed bundle")
    p.add_argument("bundle", help="bundle directory, .tar/.tar.gz, or an http(s) URL (then give --sha256)")
    p.add_argument("--sha256", help="expected digest of a bundle given as a URL")
    p.add_argument("--no-activate", action="store_true", help="install without making it current")
    p.add_argument("--backend", default="auto", help="backend whose variant to check (default: auto)")
    p.add_argument("--allow-downgrade", action="store_true",
                   help="let a version older than the current one become current")
    p.set_defaults(func=_cmd_install)
    p = subparsers.add_parser("list", parents=[common], help="installed models, versions, current/previous, variants")
    p.add_argument("name", nargs="?", help="only this model")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_list)
    p = subparsers.add_parser("activate", parents=[common], help="make an installed version current")
    p.add_argument("name")
    p.add_argument("version")
    p.set_defaults(func=_cmd_activate)
    p = subparsers.add_parser("rollback", parents=[common], help="make the previous version current again")
    p.add_argument("name")
    p.set_defaults(func=_cmd_rollback)
    p = subparsers.add_parser("remove", parents=[common], help="delete an installed version (not the current one)")
    p.add_argument("name")
    p.add_argument("version")
    p.set_defaults(func=_cmd_remove)
