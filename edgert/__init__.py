"""edgert: on-device inference runtime for single-board computers."""
from edgert.errors import EdgertError
from edgert.model import Model, load
from edgert.tensor import Quantization, TensorSpec

__version__ = "0.1.0"
__all__ = ["EdgertError", "Model", "Quantization", "TensorSpec", "__version__", "load"]
