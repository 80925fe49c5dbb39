"""edgert: on-device inference runtime for single-board computers."""
from edgert.errors import EdgertError
from edgert.tensor import Quantization, TensorSpec

__version__ = "0.1.0"
__all__ = ["EdgertError", "Quantization", "TensorSpec", "__version__"]
