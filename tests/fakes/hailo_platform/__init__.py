"""Fake `hailo_platform` (see pyhailort/pyhailort.py): the top-level names HailoRT exports."""
from hailo_platform.pyhailort.pyhailort import (  # noqa: F401
    DEVICES, VDEVICES, FormatOrder, FormatType, HailoRTException, HailoRTInvalidOperationException,
    HailoRTNotFoundException, HailoRTStreamAborted, HailoRTTimeout, HailoSchedulingAlgorithm, HailoStreamInterface,
    VDevice, make_hef)
