"""Fake `hailo_platform` (see pyhailort/pyhailort.py): the top-level names HailoRT exports."""
from hailo_platform.pyhailort.pyhailort import (  # noqa: F401
    DEVICES, HEF, VDEVICES, ConfigureParams, FormatOrder, FormatType, HailoRTException,
    HailoRTInvalidOperationException, HailoRTNotFoundException, HailoRTStreamAborted, HailoRTTimeout,
    HailoSchedulingAlgorithm, HailoStreamInterface, InferVStreams, InputVStreamParams, OutputVStreamParams, VDevice,
    make_hef)
