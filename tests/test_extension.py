"""The compiled kernel is what runs: no silent pure-Python fallback."""
import importlib
import importlib.machinery
import types

import numpy as np

import edgert.preprocess
from edgert import TensorSpec


def test_compiled_module_imports_and_is_a_shared_library():
    mod = importlib.import_module("edgert._ext.preprocess")
    assert mod.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), mod.__file__
    assert isinstance(mod.__loader__, importlib.machinery.ExtensionFileLoader)


def test_preprocessor_runs_the_compiled_class():
    mod = importlib.import_module("edgert._ext.preprocess")
    assert edgert.preprocess.FusedPreprocess is mod.FusedPreprocess
    assert not isinstance(mod.FusedPreprocess.run, types.FunctionType)  # compiled, not a def in a .py
    pre = edgert.preprocess.Preprocessor(TensorSpec("x", (1, 4, 4, 3), np.uint8), "BGR", (8, 8))
    assert type(pre._kernel) is mod.FusedPreprocess


def test_a_source_tree_without_built_kernels_says_what_to_do(tmp_path):
    """From a checkout's root, ./edgert shadows an installed edgert; without built kernels the import
    must say so and how to build them, not just "No module named edgert._ext.preprocess"."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent  # the repository (edgert may be installed elsewhere)
    checkout = tmp_path / "checkout"
    shutil.copytree(root / "edgert", checkout / "edgert", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    (checkout / "ext").mkdir()
    shutil.copy(root / "setup.py", checkout / "setup.py")
    done = subprocess.run([sys.executable, "-c", "from edgert.preprocess import Preprocessor"], cwd=checkout,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("edgert.core.errors.KernelsNotBuilt: "), last
    assert str(checkout / "edgert" / "_ext") in last and "source checkout" in last
    assert "pip install -e ." in last and "python setup.py build_ext --inplace" in last

    shutil.rmtree(checkout / "ext")  # an installed package that lost its kernels: reinstall
    done = subprocess.run([sys.executable, "-c", "import edgert.postprocess"], cwd=checkout,
                          capture_output=True, text=True, timeout=120)
    last = done.stderr.strip().splitlines()[-1]
    assert "KernelsNotBuilt" in last and "reinstall edgert" in last, last
