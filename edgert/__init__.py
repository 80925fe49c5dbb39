"""edgert: on-device inference runtime for single-board computers."""
from edgert.backends.loader import load
from edgert.core.errors import EdgertError
from edgert.core.model import Model
from edgert.core.tensor import Quantization, TensorSpec

__version__ = "0.1.0"
__all__ = ["EdgertError", "Model", "Quantization", "TensorSpec", "__version__", "load"]
