"""The one backend chooser: `edgert.load`, bundle variants and `edgert bench` ask it, and agree."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import edgert
from edgert.backends import chooser
from edgert.backends.base import Backend
from edgert.bundles.targets import choose_variant
from edgert.cli.bench import plan_backends
from edgert.core.errors import BackendUnavailable, ConfigError

MOBILENET = Path(__file__).parent / "data" / "mobilenetv2_int8.tflite"
HARDWARE = SimpleNamespace(soc=())  # what the made-up backends' probes and variant arch checks read


def Hardware():  # noqa: N802 - stands in for edgert.core.hardware.detect
    return HARDWARE


def Variant(backend, file, arch=None):  # noqa: N802 - what choose_variant reads of a manifest variant
    return SimpleNamespace(backend=backend, file=file, arch=arch)


def _backend(key, kinds, priority, missing=None, automatic=True):
    return type(f"{key.title()}Backend", (Backend,), {
        "KEY": key, "KINDS": kinds, "PRIORITY": priority, "AUTOMATIC": automatic,
        "probe": classmethod(lambda cls, hw: missing),
    })


@pytest.fixture
def registered(monkeypatch):
    """A registry of made-up backends: npu (needs an SDK that is missing), tpu (usable), cpu, sim (by name only)."""
    classes = {
        "npu": _backend("npu", ("tflite", "npu"), 20, missing="npu SDK not installed"),
        "tpu": _backend("tpu", ("tflite",), 10),
        "cpu": _backend("cpu", ("tflite",), 0),
        "sim": _backend("sim", ("tflite",), 99, automatic=False),
    }
    monkeypatch.setattr(chooser, "backend_classes", lambda: classes)
    monkeypatch.setattr(chooser, "backend_class", lambda key, source="backend": (
        classes[key] if key in classes else (_ for _ in ()).throw(ConfigError(f"{source}: unknown backend {key!r}"))))
    monkeypatch.delenv("EDGERT_BACKEND", raising=False)
    return classes


def test_auto_takes_the_best_usable_backend_and_never_a_by_name_one(registered):
    assert chooser.choose("tflite", "auto", Hardware).KEY == "tpu"
    assert [c.key for c in chooser.candidates("auto", Hardware)] == ["npu", "tpu", "cpu"]
    assert chooser.usable("auto", Hardware) == ["tpu", "cpu"]


def test_a_named_backend_is_not_probed_but_must_run_the_kind(registered):
    assert chooser.choose("npu", "npu", Hardware).KEY == "npu"  # opening it says what is missing
    assert chooser.choose("tflite", "sim", Hardware).KEY == "sim"
    with pytest.raises(ConfigError, match="'tpu' cannot run a npu model"):
        chooser.choose("npu", "tpu", Hardware)
    with pytest.raises(ConfigError, match="unknown backend 'gpu'"):
        chooser.choose("tflite", "gpu", Hardware)


def test_nothing_usable_names_every_reason(registered):
    with pytest.raises(BackendUnavailable, match="cannot run this npu model here: npu: npu SDK not installed"):
        chooser.choose("npu", "auto", Hardware)
    with pytest.raises(BackendUnavailable, match="no backend runs hef models"):
        chooser.choose("hef", "auto", Hardware)


def test_edgert_backend_overrides_auto_everywhere(registered, monkeypatch):
    monkeypatch.setenv("EDGERT_BACKEND", "cpu")
    assert chooser.choose("tflite", "auto", Hardware).KEY == "cpu"
    assert chooser.usable("auto", Hardware) == ["cpu"]
    variants = [Variant("tpu", "m_tpu.tflite"), Variant("cpu", "m.tflite")]
    assert choose_variant(variants, "auto", Hardware()).backend == "cpu"
    assert plan_backends(MOBILENET, "auto") == [("cpu", None)]


def test_bundle_variants_follow_the_same_ranking(registered):
    variants = [Variant("cpu", "m.tflite"), Variant("tpu", "m_tpu.tflite"), Variant("npu", "m.npu")]
    assert choose_variant(variants, "auto", Hardware()).backend == "tpu"  # npu ranks higher but cannot run
    assert choose_variant(variants, "cpu", Hardware()).backend == "cpu"


def test_bench_all_lists_every_backend_with_the_chooser_reasons(registered):
    plan = plan_backends(MOBILENET, "all")
    assert plan == [("sim", None), ("npu", "npu SDK not installed"), ("tpu", None), ("cpu", None)]
    assert plan_backends(MOBILENET, "auto") == [("tpu", None)]


def test_the_simulated_device_is_registered_and_loads_only_by_name():
    from edgert.backends.registry import backend_classes

    assert "simulated" in backend_classes()
    with edgert.load(MOBILENET) as model:
        assert model.backend == "cpu" and model.asynchronous is False
    with edgert.load(MOBILENET, backend="simulated", device_ms=0.5) as model:
        assert model.backend == "simulated" and model.asynchronous is True
        out = model.run(np.zeros(model.inputs[0].shape, model.inputs[0].dtype))
        assert [o.shape for o in out] == [s.shape for s in model.outputs]
    with pytest.raises(ConfigError, match="device_ms"):
        edgert.load(MOBILENET, backend="simulated", device_ms=0)


def test_auto_probes_only_the_backends_that_run_the_kind(registered):
    def broken_sdk(cls, hw):
        raise RuntimeError("a broken vendor SDK raised while being probed")

    registered["npu"] = _backend("npu", ("npu",), 20)
    registered["npu"].probe = classmethod(broken_sdk)
    assert chooser.choose("tflite", "auto", Hardware).KEY == "tpu"
