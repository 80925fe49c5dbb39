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
