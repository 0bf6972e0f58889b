"""minieffnet: EfficientNet (Tan & Le, 2019) from scratch in NumPy and Numba."""
from . import _threads

_threads.configure()  # before any Numba kernel runs: see _threads.py

from . import data, nn, ops  # noqa: E402
from .backend import get_backend, set_backend, use_backend
from .gradcheck import check_gradients, compare, numerical_gradient, rel_error
from .model import EfficientNet, MBConv, efficientnet
from .scaling import count_flops, count_parameters, make_config

__version__ = "0.1.0"
