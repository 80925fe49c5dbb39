"""The compiled kernels, built from ext/*.pyx by setup.py (private: imported only by the validating layers).

Importing this package checks they are here, so that a source checkout that shadows an installed
edgert (Python run from the repository root) says what to do instead of "No module named ...".
"""
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

from edgert.core.errors import KernelsNotBuilt

KERNELS = ("preprocess", "postprocess")


def _missing(folder: Path) -> list:
    return [k for k in KERNELS if not any((folder / f"{k}{suffix}").is_file() for suffix in EXTENSION_SUFFIXES)]


def _advice(folder: Path, missing: list) -> str:
    checkout = folder.parent.parent
    what = f"edgert's compiled kernels ({', '.join(missing)}) are not built in {folder}"
    if (checkout / "setup.py").is_file() and (checkout / "ext").is_dir():
        return (f"{what}: this is a source checkout, which shadows an installed edgert when Python starts in "
                f"{checkout}; build them in place with `pip install -e .` (or `python setup.py build_ext "
                f"--inplace`), or run from another directory")
    return f"{what}: the installation is incomplete; reinstall edgert"


_here = Path(__file__).parent
if _missing(_here):
    raise KernelsNotBuilt(_advice(_here, _missing(_here)))
