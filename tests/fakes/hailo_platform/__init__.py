"""Fake `hailo_platform` (see pyhailort/pyhailort.py): of the top-level names HailoRT 4.23 exports
(hailo_platform/__init__.py, branch hailo8), those the fake implements; nothing else. The other
exceptions (HailoRTTimeout, ...) and the test controls (DEVICES, VDEVICES, make_hef) live only in
`hailo_platform.pyhailort.pyhailort`, as the exceptions do in HailoRT."""
from hailo_platform.pyhailort.pyhailort import (  # noqa: F401
    HEF,
    AsyncInferJob,
    ConfigureParams,
    FormatOrder,
    FormatType,
    HailoRTException,
    HailoSchedulingAlgorithm,
    HailoStreamInterface,
    InferVStreams,
    InputVStreamParams,
    OutputVStreamParams,
    VDevice,
)
