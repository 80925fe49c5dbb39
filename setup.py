"""Build script: compiles ext/*.pyx into edgert._ext.* and installs the `edgert` command.

Compiler flags: `-O3` always. `EDGERT_MARCH` picks the target CPU: `native` (the default, right for the
usual build on the device itself: NEON dot-product on a Pi 5, AVX2 on a dev box) or `none` for a
portable build (wheels shipped to other machines). The C the kernels compile to is plain and
portable; the flag only lets the compiler vectorise for the CPU at hand. One exception: the region
kernel's row pass for 3- and 4-byte pixels has an AVX2 form (`ext/regions.pyx`, under `__AVX2__`, the
same integers as the portable loops, which every other build runs).
"""
import os
import platform
import shutil
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup
from setuptools.command.build_py import build_py


def _march_flags():
    march = os.environ.get("EDGERT_MARCH", "native").strip()
    machine = platform.machine().lower()
    flags = []
    if march not in ("", "none"):
        flags.append("-mcpu=native" if machine in ("armv7l", "armv6l") and march == "native" else f"-march={march}")
    if machine in ("x86_64", "amd64"):
        # 512-bit vectors make the kernels' shuffles and gathers slower on the AVX-512 CPUs we
        # measured (1.44x -> 1.70x over OpenCV on 1080p -> 224 with 256-bit vectors).
        flags.append("-mprefer-vector-width=256")
    return flags


# CPython's own flags add -fwrapv; with it, gcc cannot treat `2 * i` as an affine index and leaves
# the kernels' strided loops scalar (measured: 3x slower). The kernels never rely on wrapping.
COMPILE_ARGS = ["-O3", "-fno-wrapv", "-fno-math-errno", *_march_flags()]
if os.environ.get("EDGERT_VEC_REPORT"):
    COMPILE_ARGS.append("-fopt-info-vec-optimized")

extensions = [
    Extension(
        f"edgert._ext.{pyx.stem}",
        [str(pyx)],
        include_dirs=[numpy.get_include(), "ext"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
        extra_compile_args=COMPILE_ARGS,
    )
    for pyx in sorted(Path("ext").glob("*.pyx"))
]


class BuildPyWithServiceFiles(build_py):
    """build_py that also ships the top-level systemd/ and firmware-config/ folders (read by `edgert
    install`) and benchmarks/reference/ (read by `edgert bench --check-reference`) as edgert/_files/."""

    def run(self):
        super().run()
        for folder, name in (("systemd", "systemd"), ("firmware-config", "firmware-config"),
                             ("benchmarks/reference", "reference")):
            if Path(folder).is_dir():
                target = Path(self.build_lib, "edgert", "_files", name)
                shutil.copytree(folder, target, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", ".*"))


KIOSK_REQUIRES = ["gpiozero>=2.0", "opencv-python-headless>=4.8"]
OTA_REQUIRES = ["cryptography>=41", "paho-mqtt>=2.0"]
# The service's Prometheus endpoint (metrics: section).
METRICS_REQUIRES = ["prometheus-client>=0.17"]
PLOT_REQUIRES = ["matplotlib>=3.7"]
# Pure Python over LiteRT, no TensorFlow (it pins ai-edge-litert to the release it was built with).
QUANTIZE_REQUIRES = ["ai-edge-quantizer>=0.10; platform_system == 'Linux' and platform_machine in 'x86_64 aarch64'"]
# The onnx backend: ONNX Runtime, and the onnx package that reads and edits the graph before it runs.
ONNX_REQUIRES = ["onnxruntime>=1.17", "onnx>=1.15"]
# The tracker (edgert.tracking): optimal assignment; plate reading: the PP-OCR models are ONNX.
SURVEILLANCE_REQUIRES = ["scipy>=1.10", *ONNX_REQUIRES]
# import-linter checks the layer contracts in pyproject.toml (tests/test_layers.py, and .ci/run).
# pycocotools: the independent mAP the quantize report's detection figures are checked against.
# scikit-image: its bundled photos (faces for the BlazeFace agreement test, tests/face_photos.py).
TEST_REQUIRES = ["pytest>=7", "hypothesis>=6.80", "scikit-learn>=1.3", "scikit-image>=0.21", "import-linter>=2.0",
                 *KIOSK_REQUIRES, *OTA_REQUIRES, *PLOT_REQUIRES, *QUANTIZE_REQUIRES, *SURVEILLANCE_REQUIRES,
                 *ONNX_REQUIRES, "pycocotools>=2.0"]

setup(
    name="edgert",
    version="0.1.0",
    description="On-device inference runtime for single-board computers: fused Cython pre/post-processing, "
    "one Model API over LiteRT, ONNX Runtime, Coral, Hailo and RKNN.",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["edgert", "edgert.*"]),
    package_data={"edgert": ["models/*.tflite", "models/*.json", "models/*/*.tflite", "models/*/*.onnx",
                             "models/*/*.json", "models/*/*.txt", "models/*/LICENSE", "models/*/SOURCE.md",
                             "examples/*.yaml"]},
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    ),
    install_requires=[
        "numpy>=1.25",
        "pydantic>=2",
        "PyYAML>=6",
        # LiteRT has wheels for x86-64 and aarch64 Linux; elsewhere install tflite-runtime.
        "ai-edge-litert>=2.0; platform_system == 'Linux' and platform_machine in 'x86_64 aarch64'",
    ],
    extras_require={
        # Per board: the SDKs that come from PyPI. HailoRT's wheel and libedgetpu come from the
        # vendors' apt repositories / downloads on the device; the backends say what to install.
        "rknn": ["rknn-toolkit-lite2>=2.3; platform_machine == 'aarch64'"],
        "rpi": ["gpiozero>=2.0"],
        "bench": ["opencv-python-headless>=4.8"],
        # The kiosk loop and `edgert demo`: GPIO actuators, OpenCV sources, JPEG snapshots.
        "kiosk": KIOSK_REQUIRES,
        # .onnx models (the onnx backend, over ONNX Runtime).
        "onnx": ONNX_REQUIRES,
        # Signed model bundles and fleet delivery over MQTT.
        "ota": OTA_REQUIRES,
        # `edgert bench --plot`.
        "plot": PLOT_REQUIRES,
        # `edgert quantize` (int8 post-training quantisation of float .tflite models).
        "quantize": QUANTIZE_REQUIRES,
        # The surveillance app: multi-object tracking (edgert.tracking).
        "surveillance": SURVEILLANCE_REQUIRES,
        # The Prometheus endpoint of `edgert run` (metrics: {port: 9100}).
        "metrics": METRICS_REQUIRES,
        "test": TEST_REQUIRES + METRICS_REQUIRES,  # tests/test_metrics.py scrapes the endpoint
    },
    # Plugin groups (edgert.core.plugins.Registry): a third party registers the same way. Each group's
    # built-ins are also listed in its registry's table; tests/test_plugins.py keeps the two equal.
    entry_points={
        "console_scripts": ["edgert = edgert.cli.main:main"],
        "edgert.backends": [
            "cpu = edgert.backends.cpu:CpuBackend",
            "onnx = edgert.backends.onnx:OnnxBackend",
            "coral = edgert.backends.coral:CoralBackend",
            "hailo = edgert.backends.hailo:HailoBackend",
            "rknn = edgert.backends.rknn:RknnBackend",
            "simulated = edgert.backends.simulated:SimulatedBackend",
        ],
        "edgert.sources": [
            "picamera2 = edgert.sources.picamera:PicameraSource",
            "opencv = edgert.sources.opencv:VideoSource",
            "folder = edgert.sources.folder:FolderSource",
            "conveyor = edgert.sources.conveyor:ConveyorSource",
            "street = edgert.sources.street:StreetSource",
        ],
        "edgert.actuators": [
            "servo = edgert.actuators.servo:ServoActuator",
            "relay = edgert.actuators.relay:RelayActuator",
        ],
        "edgert.presence": [
            "frame_diff = edgert.apps.kiosk.presence:FrameDiffPresence",
            "beam_break = edgert.apps.kiosk.presence:BeamBreakPresence",
        ],
        "edgert.decoders": [
            "classify = edgert.postprocess:classify",
            "yolo = edgert.postprocess.yolo:YoloDecoder",
            "ssd = edgert.postprocess.ssd:SsdDecoder",
            "hailo_nms = edgert.postprocess.hailo_nms:parse_hailo_nms",
        ],
    },
    cmdclass={"build_py": BuildPyWithServiceFiles},
    zip_safe=False,
)
