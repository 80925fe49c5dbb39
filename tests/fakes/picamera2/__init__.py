"""Fake `picamera2` (0.3.36 API surface edgert uses); see picamera2.py for what it models.

`fake_rig.rig` holds the test knobs (cameras attached, frame period, scene, dislodged cables).
"""
from concurrent.futures import TimeoutError  # noqa: F401 - re-exported as the real package does

from .job import CancelledError, Job  # noqa: F401
from .picamera2 import Picamera2  # noqa: F401
from .request import CompletedRequest  # noqa: F401
