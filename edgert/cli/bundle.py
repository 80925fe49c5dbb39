"""``edgert model keygen | pack | sign | verify``: making, signing and checking model bundles.

`register` adds the subcommands to the ``edgert model`` subparsers; each handler returns an exit
code and raises `edgert.core.errors` exceptions, which the CLI prints as one line.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from edgert.core.errors import BundleError

DEFAULT_TRUSTED = "/etc/edgert/trusted-keys"


def _cmd_keygen(args) -> int:
    from edgert.bundles.signing import keygen

    private, public = keygen(Path(args.out), args.name)
    print(f"wrote {private} (private: keep it off the devices)")
    print(f"wrote {public} (copy it into the devices' trusted-keys directory, {DEFAULT_TRUSTED})")
    return 0


def _read_template(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path}: manifest template not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: cannot read manifest template: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(data, dict):
        raise BundleError(f"{path}: a manifest template must be a JSON object")
    return data


def _cmd_pack(args) -> int:
    from edgert.bundles.manifest import (
        file_digest,
        manifest_bytes,
        manifest_from_template,
    )
    from edgert.bundles.packing import bundle_files, pack

    src = Path(args.src_dir)
    template = _read_template(Path(args.manifest))
    files = {name: file_digest(src / name) for name in bundle_files(src, exclude=Path(args.output))}
    manifest = manifest_from_template(template, files, str(args.manifest))
    out = pack(src, Path(args.output), manifest=manifest_bytes(manifest))
    print(f"packed {out}: {manifest.name} {manifest.version}, {len(files)} files, {manifest.total_size()} bytes "
          "(unsigned: run `edgert model sign`)")
    return 0


def _cmd_sign(args) -> int:
    from edgert.bundles.archive import read_manifest
    from edgert.bundles.manifest import parse_manifest
    from edgert.bundles.packing import write_signature
    from edgert.bundles.signing import sign

    bundle = Path(args.bundle)
    data = read_manifest(bundle)
    manifest = parse_manifest(data, f"{bundle}: manifest.json")  # never sign a manifest a device would refuse
    write_signature(bundle, sign(data, Path(args.key)))
    print(f"signed {bundle}: {manifest.name} {manifest.version} with {Path(args.key).stem}")
    return 0


def _describe_variant(variant) -> str:
    arch = f" {variant.arch}" if variant.arch else ""
    return f"{variant.backend}{arch} ({variant.file})"


def _cmd_verify(args) -> int:
    from edgert.bundles.verify import verify_bundle

    if args.staging is not None and not Path(args.staging).is_dir():
        raise BundleError(f"--staging {args.staging}: not a directory")
    with tempfile.TemporaryDirectory(prefix="edgert-verify-", dir=args.staging) as staging:
        verified = verify_bundle(Path(args.bundle), Path(args.trusted), Path(staging))
    m = verified.manifest
    print(f"{args.bundle}: ok")
    print(f"name: {m.name}")
    print(f"version: {m.version}")
    print(f"task: {m.task} ({len(m.labels)} labels)")
    print(f"variants: {', '.join(_describe_variant(v) for v in m.variants)}")
    print(f"files: {len(m.files)} ({m.total_size()} bytes), all sizes and sha256 match")
    print(f"golden: {'none' if m.golden is None else f'agreement >= {m.golden.agreement:g}'}")
    print(f"min edgert: {m.min_edgert}")
    print(f"signed by: {verified.key}")
    return 0


def register(subparsers) -> None:
    """Add ``keygen``, ``pack``, ``sign`` and ``verify`` to the ``edgert model`` subparsers."""
    keygen = subparsers.add_parser("keygen", help="make an Ed25519 key pair for signing bundles")
    keygen.add_argument("name", help="key name: writes NAME.key (mode 0600) and NAME.pub")
    keygen.add_argument("--out", default=".", metavar="DIR", help="where to write the keys (default: %(default)s)")
    keygen.set_defaults(func=_cmd_keygen)

    pack = subparsers.add_parser("pack", help="pack a directory into an unsigned bundle (.tar or .tar.gz)")
    pack.add_argument("src_dir", help="the bundle's files (model variants, golden set, ...)")
    pack.add_argument("--manifest", required=True, metavar="TEMPLATE.json",
                      help="manifest without 'files' (name, version, task, labels, input, variants, ...)")
    pack.add_argument("-o", "--output", required=True, metavar="OUT.tar", help="bundle to write (.tar, .tar.gz, .tgz)")
    pack.set_defaults(func=_cmd_pack)

    sign = subparsers.add_parser("sign", help="sign a bundle's manifest (writes manifest.sig into it)")
    sign.add_argument("bundle", help="bundle directory or tar")
    sign.add_argument("--key", required=True, help="Ed25519 private key (PEM) from `edgert model keygen`")
    sign.set_defaults(func=_cmd_sign)

    verify = subparsers.add_parser("verify", help="check a bundle's signature, files and sizes")
    verify.add_argument("bundle", help="bundle directory or tar")
    verify.add_argument("--trusted", default=DEFAULT_TRUSTED, metavar="DIR",
                        help="directory of trusted public keys, *.pub (default: %(default)s)")
    verify.add_argument("--staging", default=None, metavar="DIR",
                        help="where to unpack while checking (default: the system temp dir)")
    verify.set_defaults(func=_cmd_verify)
