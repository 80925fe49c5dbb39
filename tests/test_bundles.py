"""Model bundles: manifest schema, Ed25519 signing, safe extraction, verification, and the bundle CLI.

Every refused bundle must raise one line of `BundleError` and leave the file system exactly as it
was: each bad-input test hashes the whole test folder (bundle, keys, a store with an old version,
a victim folder outside) before and after.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import stat
import tarfile
from pathlib import Path

import numpy as np
import pytest
from bundle_factory import (
    DIGITS_INPUT,
    FRAME,
    cpu_top1,
    make_bundle,
    make_keys,
    manifest_dict,
)

from edgert.bundles import archive
from edgert.bundles.archive import ExtractLimits, read_signed_manifest, safe_extract
from edgert.bundles.manifest import (
    InputConfig,
    manifest_bytes,
    parse_manifest,
    version_key,
)
from edgert.bundles.packing import pack, write_signature
from edgert.bundles.signing import keygen, sign, verify_signature
from edgert.bundles.verify import verify_bundle
from edgert.cli.bundle import register
from edgert.core.errors import BundleError

# ---------------------------------------------------------------- helpers


def tree_state(root: Path) -> dict:
    """Every path under `root` -> (kind, mode, content digest or link target)."""
    state = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                what = os.readlink(path)
            elif stat.S_ISREG(info.st_mode):
                what = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                what = None
            state[path.relative_to(root).as_posix()] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), what)
    return state


@pytest.fixture
def world(tmp_path):
    """A test folder with a store holding an old version and a victim folder outside it."""
    (tmp_path / "store" / "digits" / "0.9.0").mkdir(parents=True)
    (tmp_path / "store" / "digits" / "0.9.0" / "model.tflite").write_bytes(b"old model")
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "precious.txt").write_text("do not touch")
    return tmp_path


def refuse(bundle: Path, trusted: Path, world: Path, match: str, limits: ExtractLimits = ExtractLimits()) -> str:
    """Verify `bundle`, expect a one-line BundleError matching `match` and nothing changed under `world`."""
    before = tree_state(world)
    with pytest.raises(BundleError, match=match) as err:
        verify_bundle(bundle, trusted, world / "store" / ".staging" / "job1", limits)
    message = str(err.value)
    assert "\n" not in message and message
    assert tree_state(world) == before
    return message


def tar_entry(info: tarfile.TarInfo, data: bytes = b"") -> bytes:
    """One tar member as bytes: header plus data padded to the block size."""
    info.size = len(data) if info.isreg() else 0
    pad = (-len(data)) % tarfile.BLOCKSIZE
    return info.tobuf(tarfile.PAX_FORMAT) + data + b"\0" * pad


def signed_head(kit) -> bytes:
    """The kit's signed manifest.json and manifest.sig as the first tar members."""
    manifest, signature = read_signed_manifest(kit.bundle)
    return (tar_entry(tarfile.TarInfo("manifest.json"), manifest)
            + tar_entry(tarfile.TarInfo("manifest.sig"), signature))


def evil_tar(kit, out: Path, *members: tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]) -> Path:
    """A plain tar: the kit's valid signed manifest first, then the given members."""
    body = signed_head(kit)
    for member in members:
        info, data = member if isinstance(member, tuple) else (member, b"")
        body += tar_entry(info, data)
    out.write_bytes(body + b"\0" * (2 * tarfile.BLOCKSIZE))
    return out


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, 0o644
    return info


def resign(kit, data: dict) -> bytes:
    """Replace a directory bundle's manifest with `data`, signed by the kit's (trusted) key."""
    body = json.dumps(data).encode()
    (kit.bundle / "manifest.json").write_bytes(body)
    write_signature(kit.bundle, sign(body, kit.private_key))
    return body


# ---------------------------------------------------------------- happy paths


@pytest.mark.parametrize("form", ["dir", "tar", "tar.gz"])
def test_a_signed_bundle_verifies_and_its_model_reproduces_the_golden_set(world, form):
    import edgert
    from edgert.postprocess import classify
    from edgert.preprocess import Preprocessor

    kit = make_bundle(world / "work", form=form, version="1.2.3")
    staging = world / "store" / ".staging" / "job1"
    verified = verify_bundle(kit.bundle, kit.trusted, staging)
    assert verified.key == kit.key_name == "publisher"
    assert verified.manifest == kit.manifest and verified.manifest.version == "1.2.3"
    assert verified.root.parent == staging
    assert (verified.root / "manifest.json").read_bytes() == manifest_bytes(kit.manifest)
    assert len((verified.root / "manifest.sig").read_bytes()) == 64
    for rel, entry in kit.manifest.files.items():
        assert hashlib.sha256((verified.root / rel).read_bytes()).hexdigest() == entry.sha256

    # The unpacked bundle is usable as it stands: the golden set through production's path.
    m = verified.manifest
    images = np.load(verified.root / m.golden.inputs)["images"]
    expected = np.load(verified.root / m.golden.expected)["top1"]
    with edgert.load(verified.root / m.variants[0].file, backend="cpu") as model:
        pre = Preprocessor(model.inputs[0], src_format="BGR", src_size=(FRAME, FRAME), **m.input.preprocess_kwargs())
        top1 = [classify(model.run(pre(f))[0], model.outputs[0], top_k=1)[0][0] for f in images]
    assert np.array_equal(top1, expected)
    assert len(set(top1)) > 3  # a model that answers the same for everything would prove nothing


def test_golden_labels_come_from_the_model_and_mostly_match_the_truth():
    truth = np.load(Path(__file__).parent / "data" / "digits_test.npz")["labels"][:24]
    top1 = cpu_top1(24)
    assert (top1 == truth).mean() >= 0.9


def test_the_signing_key_among_several_trusted_keys_is_named(world):
    kit = make_bundle(world / "work", form="tar.gz")
    other_private, other_public, _ = make_keys(world / "other", "another-publisher")
    (kit.trusted / other_public.name).write_bytes(other_public.read_bytes())
    (kit.trusted / "README.txt").write_text("not a key")
    (kit.trusted / "broken.pub").write_text("not a PEM key")
    assert verify_bundle(kit.bundle, kit.trusted, world / "s1").key == "publisher"
    write_signature(kit.bundle, sign(read_signed_manifest(kit.bundle)[0], other_private))
    assert verify_bundle(kit.bundle, kit.trusted, world / "s2").key == "another-publisher"


def test_pack_is_reproducible_and_puts_the_manifest_first(tmp_path):
    kit = make_bundle(tmp_path, form="tar.gz")
    again = pack(kit.source, tmp_path / "again.tar.gz", manifest=manifest_bytes(kit.manifest))
    write_signature(again, read_signed_manifest(kit.bundle)[1])
    assert again.read_bytes() == kit.bundle.read_bytes()
    with tarfile.open(kit.bundle) as tar:
        names = tar.getnames()
    assert names[:2] == ["manifest.json", "manifest.sig"]
    assert sorted(names[2:]) == sorted(kit.manifest.files)


# ---------------------------------------------------------------- signatures


def test_unsigned_bundle_is_refused(world):
    kit = make_bundle(world / "work", signed=False)
    refuse(kit.bundle, kit.trusted, world, "not signed")
    kit = make_bundle(world / "work", form="tar.gz", version="2.0.0", signed=False)
    refuse(kit.bundle, kit.trusted, world, "not signed")


def test_signature_by_an_untrusted_key_is_refused(world):
    kit = make_bundle(world / "work", form="tar")
    stranger, _, _ = make_keys(world / "stranger", "stranger")
    write_signature(kit.bundle, sign(manifest_bytes(kit.manifest), stranger))
    assert "not signed by a trusted key" in refuse(kit.bundle, kit.trusted, world, "signature")


def test_malformed_signature_and_missing_trusted_keys_are_refused(world):
    kit = make_bundle(world / "work")
    (kit.bundle / "manifest.sig").write_bytes(b"short")
    refuse(kit.bundle, kit.trusted, world, "5 bytes")
    write_signature(kit.bundle, sign(manifest_bytes(kit.manifest), kit.private_key))
    refuse(kit.bundle, world / "no-such-dir", world, "not a directory")
    (world / "empty-trust").mkdir()
    refuse(kit.bundle, world / "empty-trust", world, "no Ed25519 public key")


@pytest.mark.parametrize("form", ["dir", "tar.gz"])
def test_manifest_changed_after_signing_is_refused(world, form):
    kit = make_bundle(world / "work", form=form)
    data = manifest_dict(kit)
    data["golden"]["agreement"] = 0.1  # a tamperer loosening the canary
    changed = json.dumps(data, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    signature = read_signed_manifest(kit.bundle)[1]
    if form == "dir":
        (kit.bundle / "manifest.json").write_bytes(changed)
    else:
        pack(kit.source, kit.bundle, manifest=changed, signature=signature)
    refuse(kit.bundle, kit.trusted, world, "not signed by a trusted key")


def test_verify_signature_reports_the_key_and_refuses_one_changed_byte(tmp_path):
    private, _, trusted = make_keys(tmp_path, "alice")
    body = b'{"hello": 1}\n'
    signature = sign(body, private)
    assert len(signature) == 64
    assert verify_signature(body, signature, trusted) == "alice"
    with pytest.raises(BundleError, match="not signed by a trusted key"):
        verify_signature(body.replace(b"1", b"2"), signature, trusted)


# ---------------------------------------------------------------- files against the manifest


@pytest.mark.parametrize("change, match", [
    (lambda p: p.write_bytes(bytes([p.read_bytes()[0] ^ 1]) + p.read_bytes()[1:]), "sha256"),
    (lambda p: p.write_bytes(p.read_bytes() + b"\0"), "the manifest says"),
])
def test_a_file_changed_after_signing_is_refused(world, change, match):
    kit = make_bundle(world / "work")
    change(kit.bundle / "model" / "digits_int8.tflite")
    assert "digits_int8.tflite" in refuse(kit.bundle, kit.trusted, world, match)


def test_a_file_changed_after_signing_in_a_tar_is_refused(world):
    kit = make_bundle(world / "work", form="tar.gz")
    manifest, signature = read_signed_manifest(kit.bundle)
    target = kit.source / "golden" / "expected.npz"
    target.write_bytes(target.read_bytes()[:-1] + b"\x01")
    pack(kit.source, kit.bundle, manifest=manifest, signature=signature)
    refuse(kit.bundle, kit.trusted, world, "golden/expected.npz' does not match its sha256")


def test_a_listed_file_that_is_missing_is_refused(world):
    kit = make_bundle(world / "work")
    (kit.bundle / "golden" / "expected.npz").unlink()
    refuse(kit.bundle, kit.trusted, world, "'golden/expected.npz' listed in the manifest is missing")


def test_an_extra_unlisted_file_is_refused(world):
    kit = make_bundle(world / "work")
    (kit.bundle / "model" / "backdoor.py").write_text("import os")
    refuse(kit.bundle, kit.trusted, world, "'model/backdoor.py' is not listed in the manifest")


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.update(version="1.2"), r"version: expected a semantic version"),
    (lambda d: d.update(colour="BGR"), r"colour: unknown key"),
    (lambda d: d["input"].update(gamma=2.2), r"input\.gamma: unknown key"),
    (lambda d: d.update(format_version=2), r"format_version: .*got 2"),
    (lambda d: d["variants"].append({"backend": "hailo", "file": "model/digits_int8.tflite", "arch": "hailo8"}),
     r"variants\[1\]: .*\.hef"),
    (lambda d: d.update(name="Digits Model"), r"name: "),
    (lambda d: d["files"].pop("golden/inputs.npz"), "golden file 'golden/inputs.npz' is not listed"),
    (lambda d: d["files"].update({"../escape": d["files"]["golden/inputs.npz"]}), r"'\.\./escape'"),
])
def test_a_bad_manifest_schema_is_refused_even_when_signed(world, edit, match):
    kit = make_bundle(world / "work")
    data = manifest_dict(kit)
    edit(data)
    resign(kit, data)
    message = refuse(kit.bundle, kit.trusted, world, match)
    assert message.startswith(f"{kit.bundle}: manifest.json: ")


def test_a_bundle_for_a_newer_edgert_is_refused(world):
    kit = make_bundle(world / "work", template={"min_edgert": "99.0.0"})
    refuse(kit.bundle, kit.trusted, world, r"needs edgert >= 99\.0\.0; this is edgert 0\.1\.0")


# ---------------------------------------------------------------- unsafe archives


def test_a_truncated_download_is_refused(world):
    kit = make_bundle(world / "work", form="tar.gz")
    data = kit.bundle.read_bytes()
    for cut in (len(data) * 3 // 5, len(data) - 9, 100):
        kit.bundle.write_bytes(data[:cut])
        refuse(kit.bundle, kit.trusted, world, "truncated|not a readable tar")
    plain = make_bundle(world / "work", form="tar", version="1.0.1")
    data = plain.bundle.read_bytes()
    plain.bundle.write_bytes(data[: len(data) // 2])
    refuse(plain.bundle, plain.trusted, world, "truncated")


@pytest.mark.parametrize("name", ["../escape.txt", "model/../../escape.txt", "/tmp/escape.txt", "./../escape.txt"])
def test_members_escaping_the_bundle_are_refused(world, name):
    kit = make_bundle(world / "work", form="tar")
    bundle = evil_tar(kit, world / "evil.tar", (member(name), b"pwned"))
    refuse(bundle, kit.trusted, world, "unsafe member path")
    assert not Path("/tmp/escape.txt").exists()


def test_a_symlink_pointing_outside_is_refused(world):
    kit = make_bundle(world / "work", form="tar")
    link = member("model/out", tarfile.SYMTYPE, str(world / "victim"))
    bundle = evil_tar(kit, world / "evil.tar", link, (member("model/out/precious.txt"), b"overwritten"))
    refuse(bundle, kit.trusted, world, "'model/out' is a symlink")
    rel_link = member("model/up", tarfile.SYMTYPE, "../../../victim")
    refuse(evil_tar(kit, world / "evil2.tar", rel_link), kit.trusted, world, "symlink")


def test_a_symlink_in_a_directory_bundle_is_refused(world):
    kit = make_bundle(world / "work")
    (kit.bundle / "model" / "out").symlink_to(world / "victim")
    refuse(kit.bundle, kit.trusted, world, "'model/out' is a symlink")


def test_a_hardlink_is_refused(world):
    kit = make_bundle(world / "work", form="tar")
    link = member("model/hard", tarfile.LNKTYPE, "/etc/passwd")
    refuse(evil_tar(kit, world / "evil.tar", link), kit.trusted, world, "is a hardlink")


@pytest.mark.parametrize("kind, match", [(tarfile.CHRTYPE, "device file"), (tarfile.BLKTYPE, "device file"),
                                         (tarfile.FIFOTYPE, "FIFO")])
def test_device_files_and_fifos_are_refused(world, kind, match):
    kit = make_bundle(world / "work", form="tar")
    special = member("model/dev", kind)
    special.devmajor, special.devminor = 1, 3
    refuse(evil_tar(kit, world / "evil.tar", special), kit.trusted, world, match)


def test_a_fifo_in_a_directory_bundle_is_refused(world):
    kit = make_bundle(world / "work")
    os.mkfifo(kit.bundle / "model" / "pipe")
    refuse(kit.bundle, kit.trusted, world, "'model/pipe' is not a regular file")


def test_a_member_given_twice_is_refused(world):
    kit = make_bundle(world / "work", form="tar")
    model = (kit.source / "model" / "digits_int8.tflite").read_bytes()
    bundle = evil_tar(kit, world / "evil.tar", (member("model/digits_int8.tflite"), model),
                      (member("model/digits_int8.tflite"), b"evil twin"))
    refuse(bundle, kit.trusted, world, "appears twice")


def _zeros_bomb(kit, out: Path, mib: int) -> Path:
    """A gzip tar whose one member is `mib` MiB of zeros, built from concatenated gzip members
    (a valid gzip stream) so the test never compresses the whole thing."""
    info = member("model/zeros.bin")
    info.size = mib << 20
    header = info.tobuf(tarfile.PAX_FORMAT)
    one_mib = gzip.compress(b"\0" * (1 << 20))
    with open(out, "wb") as f:
        f.write(gzip.compress(signed_head(kit) + header))
        for _ in range(mib):
            f.write(one_mib)
        f.write(gzip.compress(b"\0" * (2 * tarfile.BLOCKSIZE)))
    return out


def test_a_decompression_bomb_is_refused_before_it_is_written(world, monkeypatch):
    kit = make_bundle(world / "work", form="tar.gz")
    bomb = _zeros_bomb(kit, world / "bomb.tar.gz", 200)
    assert bomb.stat().st_size < 1 << 20
    with gzip.open(bomb) as g:  # the bomb is real: 200 MiB of zeros behind the manifest
        assert g.read(2048)
    written, real_write = [], archive._write_file

    def spy(target, *args):
        written.append(target.name)
        real_write(target, *args)

    monkeypatch.setattr(archive, "_write_file", spy)
    message = refuse(bomb, kit.trusted, world, "compression ratio over 100")
    assert "zeros.bin" in message and "zeros.bin" not in written
    assert written  # the files before it were written (then removed): the spy sees writes


def test_too_many_bytes_are_refused(world):
    kit = make_bundle(world / "work", form="tar")
    limits = ExtractLimits(max_total_bytes=20_000)
    refuse(kit.bundle, kit.trusted, world, "over the limits", limits)  # by the manifest, before extracting
    # The manifest's own files fit; a member it does not list is refused by its header's size.
    assert kit.manifest.total_size() < 100_000
    bundle = evil_tar(kit, world / "big.tar", (member("model/big.bin"), b"\1" * 200_000))
    message = refuse(bundle, kit.trusted, world, "unpacks to more than 100000 bytes",
                     ExtractLimits(max_total_bytes=100_000))
    assert "model/big.bin" in message


def test_too_many_files_are_refused(world):
    kit = make_bundle(world / "work", form="tar.gz")
    many = [(member(f"model/f{i:04d}.bin"), b"x") for i in range(300)]
    refuse(evil_tar(kit, world / "many.tar", *many), kit.trusted, world, "more than 256 files")
    for i in range(10):
        (kit.source / f"extra{i}").write_bytes(b"y")
    pack(kit.source, world / "many-dir.tar", manifest=b"{}")
    with pytest.raises(BundleError, match="more than 5 files"):
        safe_extract(world / "many-dir.tar", world / "out", ExtractLimits(max_files=5))
    assert not (world / "out").exists()


def test_safe_extract_refuses_an_existing_destination_and_garbage(tmp_path):
    kit = make_bundle(tmp_path, form="tar")
    (tmp_path / "dest").mkdir()
    with pytest.raises(BundleError, match="already exists"):
        safe_extract(kit.bundle, tmp_path / "dest")
    (tmp_path / "junk.tar").write_bytes(os.urandom(4096))
    with pytest.raises(BundleError, match="not a readable tar"):
        read_signed_manifest(tmp_path / "junk.tar")
    with pytest.raises(BundleError, match="bundle not found"):
        read_signed_manifest(tmp_path / "nope.tar")


# ---------------------------------------------------------------- manifest


def test_manifest_bytes_are_canonical(tmp_path):
    kit = make_bundle(tmp_path)
    body = manifest_bytes(kit.manifest)
    assert body.endswith(b"}\n") and b": " not in body and b", " not in body
    data = json.loads(body)
    assert list(data) == sorted(data)
    shuffled = json.dumps(dict(reversed(list(data.items()))), indent=2).encode()
    assert manifest_bytes(parse_manifest(shuffled, "x")) == body


@pytest.mark.parametrize("data, match", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"name": "a", "name": "b"}', "given twice"),
    (b"\xff\xfe", "not UTF-8"),
])
def test_parse_manifest_refuses_non_manifests(data, match):
    with pytest.raises(BundleError, match=match) as err:
        parse_manifest(data, "m.json")
    assert str(err.value).startswith("m.json: ") and "\n" not in str(err.value)


def test_variants_name_their_target(tmp_path):
    kit = make_bundle(tmp_path, extra_files={"model/digits.hef": b"hef", "model/digits.rknn": b"rknn"},
                      variants=[{"backend": "cpu", "file": "model/digits_int8.tflite"},
                                {"backend": "hailo", "file": "model/digits.hef", "arch": "hailo8l"},
                                {"backend": "rknn", "file": "model/digits.rknn", "arch": "rk3588",
                                 "options": {"input_shape": [1, 8, 8, 1]}}])
    assert [(v.backend, v.arch) for v in kit.manifest.variants] == [("cpu", None), ("hailo", "hailo8l"),
                                                                   ("rknn", "rk3588")]
    data = manifest_dict(kit)
    for variant, match in (({"backend": "hailo", "file": "model/digits.hef"}, "needs arch hailo8 or hailo8l"),
                           ({"backend": "rknn", "file": "model/digits.rknn", "arch": "x86"}, "naming the SoC"),
                           ({"backend": "cpu", "file": "model/digits_int8.tflite", "arch": "rk3588"}, "takes no arch"),
                           ({"backend": "cpu", "file": "model/other.tflite"}, "not listed in files")):
        with pytest.raises(BundleError, match=match):
            parse_manifest(json.dumps({**data, "variants": [variant]}).encode(), "m.json")


def test_version_order_is_semantic():
    ordered = ["0.9.9", "1.2.0-alpha", "1.2.0-alpha.1", "1.2.0-rc.1", "1.2.0", "1.2.1", "1.10.0"]
    assert sorted(reversed(ordered), key=version_key) == ordered
    with pytest.raises(BundleError, match="semantic version"):
        version_key("1.2")


def test_input_config_feeds_the_preprocessor():
    import edgert
    from edgert.preprocess import Preprocessor

    config = InputConfig(**DIGITS_INPUT)
    kwargs = config.preprocess_kwargs()
    assert kwargs["std"] == 255.0 and kwargs["channel_order"] == "RGB" and kwargs["resize"] == "stretch"
    with edgert.load(Path(__file__).parent / "data" / "digits_int8.tflite", backend="cpu") as model:
        pre = Preprocessor(model.inputs[0], src_format="BGR", src_size=(16, 16), **kwargs)
        x = pre(np.full((16, 16, 3), 255, np.uint8))
    assert x.dtype == np.uint8 and x.max() == 255  # 255/255 = 1.0 -> the top of the input scale


# ---------------------------------------------------------------- keys


def test_keygen_writes_a_private_key_only_the_owner_can_read(tmp_path):
    old = os.umask(0o022)
    try:
        private, public = keygen(tmp_path / "keys", "release-2026")
    finally:
        os.umask(old)
    assert private.name == "release-2026.key" and public.name == "release-2026.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    before = private.read_bytes()
    with pytest.raises(BundleError, match="refusing to overwrite"):
        keygen(tmp_path / "keys", "release-2026")
    assert private.read_bytes() == before
    with pytest.raises(BundleError, match="key name"):
        keygen(tmp_path / "keys", "../evil")


def test_sign_refuses_keys_that_are_not_ed25519_private_keys(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ec_key = tmp_path / "ec.key"
    ec_key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(BundleError, match="not an Ed25519 private key"):
        sign(b"x", ec_key)
    _, public, _ = make_keys(tmp_path, "pub")
    with pytest.raises(BundleError, match="not a usable PEM private key"):
        sign(b"x", public)
    with pytest.raises(BundleError, match="not found"):
        sign(b"x", tmp_path / "missing.key")


# ---------------------------------------------------------------- CLI


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="edgert model")
    register(parser.add_subparsers(dest="model_command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_cli_keygen_pack_sign_verify(tmp_path, capsys):
    kit = make_bundle(tmp_path / "factory", signed=False)
    template = tmp_path / "template.json"
    data = manifest_dict(kit)
    del data["files"], data["format_version"]
    template.write_text(json.dumps(data, indent=2))

    assert run_cli("keygen", "release", "--out", str(tmp_path / "keys")) == 0
    assert stat.S_IMODE((tmp_path / "keys" / "release.key").stat().st_mode) == 0o600
    out = tmp_path / "out" / "digits-1.0.0.tar.gz"
    assert run_cli("pack", str(kit.source), "--manifest", str(template), "-o", str(out)) == 0
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    (trusted / "release.pub").write_bytes((tmp_path / "keys" / "release.pub").read_bytes())
    with pytest.raises(BundleError, match="not signed"):
        run_cli("verify", str(out), "--trusted", str(trusted))
    assert run_cli("sign", str(out), "--key", str(tmp_path / "keys" / "release.key")) == 0
    assert run_cli("sign", str(out), "--key", str(tmp_path / "keys" / "release.key")) == 0  # re-sign replaces
    with tarfile.open(out) as tar:
        assert tar.getnames().count("manifest.sig") == 1
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no temp files left
    capsys.readouterr()
    assert run_cli("verify", str(out), "--trusted", str(trusted), "--staging", str(tmp_path)) == 0
    printed = capsys.readouterr().out
    for line in ("name: digits", "version: 1.0.0", "variants: cpu (model/digits_int8.tflite)", "signed by: release"):
        assert line in printed
    assert read_signed_manifest(out)[0] == manifest_bytes(kit.manifest)  # same files -> same manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["factory", "keys", "out", "template.json", "trusted"]


def test_cli_sign_a_directory_bundle_and_refuse_bad_input(tmp_path, capsys):
    kit = make_bundle(tmp_path, signed=False)
    assert run_cli("sign", str(kit.bundle), "--key", str(kit.private_key)) == 0
    assert verify_bundle(kit.bundle, kit.trusted, tmp_path / "staging").key == "publisher"
    (tmp_path / "bad.json").write_text('{"name": "digits"')
    with pytest.raises(BundleError, match="not valid JSON"):
        run_cli("pack", str(kit.source), "--manifest", str(tmp_path / "bad.json"), "-o", str(tmp_path / "x.tar"))
    (tmp_path / "t.json").write_text(json.dumps({**manifest_dict(kit), "version": "one"}))
    with pytest.raises(BundleError, match="version: expected a semantic version"):
        run_cli("pack", str(kit.source), "--manifest", str(tmp_path / "t.json"), "-o", str(tmp_path / "x.tar"))
    (kit.source / "link").symlink_to("/etc/passwd")
    (tmp_path / "t.json").write_text(json.dumps(manifest_dict(kit)))
    with pytest.raises(BundleError, match="'link' is a symlink"):
        run_cli("pack", str(kit.source), "--manifest", str(tmp_path / "t.json"), "-o", str(tmp_path / "x.tar"))
    assert not (tmp_path / "x.tar").exists()


def test_signing_a_truncated_tar_leaves_it_as_it_was(tmp_path):
    kit = make_bundle(tmp_path, form="tar.gz", signed=False)
    data = kit.bundle.read_bytes()[:-200]
    kit.bundle.write_bytes(data)
    with pytest.raises(BundleError, match="truncated"):
        run_cli("sign", str(kit.bundle), "--key", str(kit.private_key))
    assert kit.bundle.read_bytes() == data
    assert sorted(p.name for p in kit.bundle.parent.iterdir()) == sorted(["src", "keys", "trusted-publisher",
                                                                          kit.bundle.name])


def test_a_huge_tar_header_is_refused_before_it_fills_memory(tmp_path):
    """A GNU long-name header of 200 MB in ~200 kB of gzip: tarfile would read it whole before any member."""
    import gzip
    import resource
    import tarfile

    from edgert.bundles.archive import read_signed_manifest

    bomb = tmp_path / "longname.tar.gz"
    size = 200 << 20
    info = tarfile.TarInfo("././@LongLink")
    info.size, info.type = size, tarfile.GNUTYPE_LONGNAME
    with gzip.open(bomb, "wb", compresslevel=9) as g:
        g.write(info.tobuf(format=tarfile.GNU_FORMAT))
        block = b"a" * (1 << 20)
        for _ in range(size >> 20):
            g.write(block)
        g.write(tarfile.TarInfo("manifest.json").tobuf(format=tarfile.GNU_FORMAT) + b"\0" * 1024)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(BundleError, match="decompression bomb"):
        read_signed_manifest(bomb)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100, f"peak memory grew by {grown_mb:.0f} MB"


def test_cli_pack_with_the_output_inside_the_folder_leaves_it_out(tmp_path, capsys):
    from edgert.bundles.archive import read_manifest

    kit = make_bundle(tmp_path / "factory", signed=False)
    template = tmp_path / "template.json"
    data = manifest_dict(kit)
    del data["files"], data["format_version"]
    template.write_text(json.dumps(data))
    out = kit.source / "digits-1.0.0.tar.gz"
    for _ in range(2):  # the second run finds the first run's archive in the folder
        assert run_cli("pack", str(kit.source), "--manifest", str(template), "-o", str(out)) == 0
        with tarfile.open(out) as tar:
            assert out.name not in tar.getnames()
        assert read_manifest(out) == manifest_bytes(kit.manifest)
    # A relative -o naming the same file is left out too.
    assert run_cli("pack", str(kit.source), "--manifest", str(template), "-o",
                   os.path.relpath(out)) == 0
    assert read_manifest(out) == manifest_bytes(kit.manifest)
