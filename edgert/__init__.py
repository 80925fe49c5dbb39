"""edgert: on-device inference runtime for single-board computers."""
from edgert.core.errors import EdgertError
from edgert.core.model import Model, load
from edgert.core.tensor import Quantization, TensorSpec

__version__ = "0.1.0"
__all__ = ["EdgertError", "Model", "Quantization", "TensorSpec", "__version__", "load"]
