"""Test controls of the fake RKNN Toolkit Lite2 (not part of the real package).

Fresh per test through the ``fake_rknn`` fixture, which returns this module.
"""
from rknnlite.api.rknn_lite import RKNNLite  # noqa: F401 - for tests: fake_rknn.RKNNLite

#: The SoC the fake pretends to run on; core masks over cores it lacks fail as on the device.
SOC = "rk3588"
#: Every successful init_runtime call as (core_mask, instance id): tests check pinning.
CALLS = []
#: Append to make the next inference fail (the real runtime logs and returns None).
FAIL_NEXT_INFERENCE = []


def make_rknn(tflite_bytes: bytes) -> bytes:
    """The bytes of a fake .rknn file holding `tflite_bytes`."""
    return b"RKNN" + tflite_bytes
