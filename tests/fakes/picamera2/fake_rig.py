"""Test knobs of the fake picamera2 (no such module in the real package).

`rig` is the "hardware" the fake sees: which cameras are attached, how fast they deliver frames,
what they look at, and whether a cable has come loose. Tests change it through the
``fake_picamera2`` fixture of ``tests/fake_sdks.py``, which gives every test a fresh rig.
"""
from __future__ import annotations

import threading

import numpy as np

#: RGB colours of the default scene's quadrants (top-left, top-right, bottom-left, bottom-right).
#: Not saturated, so limited-range YUV holds them without clipping.
QUADRANTS = ((200, 40, 40), (40, 180, 60), (50, 60, 200), (128, 128, 128))

IMX708 = {"Model": "imx708", "Location": 2, "Rotation": 180,
          "Id": "/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a"}


def quadrant_scene(width: int, height: int, index: int = 0) -> np.ndarray:
    """The default scene: four flat colour quadrants (``QUADRANTS``), as RGB ``(height, width, 3)``."""
    rgb = np.empty((height, width, 3), np.uint8)
    hw, hh = width // 2, height // 2
    rgb[:hh, :hw], rgb[:hh, hw:], rgb[hh:, :hw], rgb[hh:, hw:] = QUADRANTS
    return rgb


class Rig:
    """What the fake camera system is connected to.

    Attributes:
        cameras: ``global_camera_info()`` entries; an empty list means no camera is attached.
        platform: ``"PISP"`` (Pi 5) or ``"VC4"`` (Pi 4 and older: lores must be YUV).
        not_found: How a missing camera fails: ``"runtime"`` (RuntimeError "Camera(s) not found",
            sdk-notes for 0.3.38) or ``"index"`` (IndexError from ``global_camera_info()[n]``, as the
            0.3.36 source does).
        frame_period: Seconds between frames of a started camera.
        scene: ``None`` for `quadrant_scene` (rendered once per configuration), or a callable
            ``(width, height, index) -> RGB uint8 (h, w, 3)`` called for every frame and stream.
        instances: Every Picamera2 made, in order.
        opened: Camera number -> the Picamera2 that holds it now.
        hang_breaker: Set at teardown: calls that would block forever raise instead.
        forever_waits: How many calls began waiting without a timeout.
    """

    def __init__(self):
        self.cameras = [dict(IMX708, Num=0)]
        self.platform = "PISP"
        self.not_found = "runtime"
        self.frame_period = 0.01
        self.scene = None
        self.instances = []
        self.opened = {}
        self.hang_breaker = threading.Event()
        self.forever_waits = 0
        self._dislodged = {}
        self._lock = threading.Lock()

    def set_camera_count(self, n: int) -> None:
        """Attach ``n`` identical cameras (0: none)."""
        self.cameras = [dict(IMX708, Num=i, Id=f"{IMX708['Id']}/{i}") for i in range(n)]

    def dislodge(self, camera_num: int = 0, heal_on_close: bool = True) -> None:
        """Pull the cable of a camera: it stays listed and opens, but no frame completes.

        Args:
            camera_num: Which camera.
            heal_on_close: The cable is reseated once the camera that saw it go is closed (a
                glitch); False keeps it out until `reseat`.
        """
        with self._lock:
            self._dislodged[camera_num] = heal_on_close

    def reseat(self, camera_num: int = 0) -> None:
        """Push the cable back in."""
        with self._lock:
            self._dislodged.pop(camera_num, None)

    def is_dislodged(self, camera_num: int) -> bool:
        return camera_num in self._dislodged

    def camera_closed(self, camera_num: int) -> None:
        with self._lock:
            if self._dislodged.get(camera_num):
                del self._dislodged[camera_num]


rig = Rig()
