"""`edgert faces enrol NAME IMAGES... | list | remove NAME | export FILE | import FILE | threshold`: the face gallery.

The gallery is ``<state dir>/faces.sqlite3`` (beside the journal) unless ``--gallery`` names another;
the embedding model is ``--model`` or the config's ``face_recognition.model`` (``--config FILE``).
Enrolment finds faces with BlazeFace, refuses an image with no face or several faces (naming it),
aligns and embeds the face, and stores nothing unless every image was accepted. ``threshold`` stores the
operating threshold in the gallery, given as a number or taken from the EER threshold of an
``edgert bench --task embedding --json`` result (``--from-bench FILE``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from edgert.core.errors import ConfigError

DEFAULT_STATE_DIR = Path("/var/lib/edgert")


def _admin(args):
    from edgert.apps.surveillance.faces.admin import FaceAdmin
    from edgert.apps.surveillance.faces.config import DEFAULT_GALLERY

    state_dir, model, backend, gallery = DEFAULT_STATE_DIR, None, "auto", DEFAULT_GALLERY
    if args.config is not None:
        from edgert.service.config import load_config

        config = load_config(args.config)
        state_dir = config.service.state_dir
        section = getattr(config, "face_recognition", None)
        if section is not None:
            model, backend, gallery = section.model.path, section.model.backend, section.gallery_path(state_dir)
    if args.state_dir is not None:
        state_dir = args.state_dir
    if args.gallery is not None:
        gallery = args.gallery
    elif not Path(gallery).is_absolute():
        gallery = Path(state_dir) / gallery
    if args.model is not None:
        model, backend = args.model, args.backend
    if model is None:
        raise ConfigError("faces: no embedding model; give --model FILE or a --config with face_recognition.model")
    return FaceAdmin(gallery, model, backend=backend)


def _read_images(paths) -> list:
    from edgert.apps.surveillance.faces.admin import decode_image
    from edgert.core.errors import GalleryError

    images = []
    for p in paths:
        try:
            data = Path(p).read_bytes()
        except OSError as exc:
            raise GalleryError(f"{p}: cannot read ({exc.strerror or exc})") from None
        images.append((Path(p).name, decode_image(data, str(p))))
    return images


def _cmd_enrol(args) -> int:
    result = _admin(args).enrol(args.name, _read_images(args.images))
    print(f"{result['name']}: {result['added']} embedding(s) added, {result['embeddings']} in all")
    return 0


def _cmd_list(args) -> int:
    people = _admin(args).people()
    for p in people:
        print(f"{p['name']}\t{p['embeddings']}")
    if not people:
        print("no one enrolled")
    return 0


def _cmd_remove(args) -> int:
    result = _admin(args).remove(args.name)
    print(f"{result['name']}: removed ({result['removed']} embedding(s))")
    return 0


def _cmd_export(args) -> int:
    result = _admin(args).export(args.file)
    print(f"{result['path']}: {result['embeddings']} embedding(s) exported")
    return 0


def _cmd_import(args) -> int:
    result = _admin(args).import_file(args.file)
    for name, n in result["added"].items():
        print(f"{name}: {n} embedding(s) imported")
    return 0


def _cmd_threshold(args) -> int:
    from edgert.apps.surveillance.faces.admin import threshold_from_bench

    if (args.value is None) == (args.from_bench is None):
        raise ConfigError("faces threshold: give either a VALUE or --from-bench FILE")
    value = threshold_from_bench(args.from_bench) if args.from_bench else args.value
    result = _admin(args).set_threshold(value, args.margin)
    print(f"gallery threshold {result['threshold']:.4f}, margin {result['margin']:.4f}")
    return 0


def register(sub) -> None:
    """Add ``faces`` and its subcommands to the `edgert` parser's subparsers."""
    faces = sub.add_parser("faces", help="the face gallery: enrol, list, remove, export, import, threshold")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", default=None, help="embedding model (default: the config's)")
    common.add_argument("--backend", default="auto", help="backend for --model (default: %(default)s)")
    common.add_argument("--config", default=None, help="service config with a face_recognition section")
    common.add_argument("--state-dir", type=Path, default=None, help=f"state directory (default: {DEFAULT_STATE_DIR})")
    common.add_argument("--gallery", type=Path, default=None, help="gallery file (default: STATE_DIR/faces.sqlite3)")
    fs = faces.add_subparsers(dest="faces_command", required=True)
    p = fs.add_parser("enrol", parents=[common], help="enrol a person from photos (one face each)")
    p.add_argument("name")
    p.add_argument("images", nargs="+", type=Path)
    p.set_defaults(func=_cmd_enrol)
    fs.add_parser("list", parents=[common], help="who is enrolled").set_defaults(func=_cmd_list)
    p = fs.add_parser("remove", parents=[common], help="forget a person")
    p.add_argument("name")
    p.set_defaults(func=_cmd_remove)
    p = fs.add_parser("export", parents=[common], help="write the gallery to an NPZ file")
    p.add_argument("file", type=Path)
    p.set_defaults(func=_cmd_export)
    p = fs.add_parser("import", parents=[common], help="add the embeddings of an NPZ export")
    p.add_argument("file", type=Path)
    p.set_defaults(func=_cmd_import)
    p = fs.add_parser("threshold", parents=[common], help="set the gallery's match threshold")
    p.add_argument("value", nargs="?", type=float, default=None)
    p.add_argument("--from-bench", type=Path, default=None, help="an edgert bench --task embedding --json result")
    p.add_argument("--margin", type=float, default=None, help="also set the margin over the second-best person")
    p.set_defaults(func=_cmd_threshold)
