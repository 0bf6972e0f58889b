"""minieffnet: EfficientNet (Tan & Le, 2019) from scratch in NumPy and Numba."""
from . import _malloc, _threads

_threads.configure()  # before any Numba kernel runs: see _threads.py
_malloc.configure()  # freed arrays stay with the process for the next step: see _malloc.py

# The submodules a user reaches for as ``me.<name>`` (``me.interop.from_torchvision(...)``).
# None imports matplotlib at import time (tests/test_cli.py checks), so together they add
# about 20 ms to the ~0.3 s of ``import minieffnet`` (NumPy and Numba).
from . import (cam, checkpoint, data, experiments, inference, interop, nn, ops,  # noqa: E402
               optim, scaling, train, train_config, viz)
from .backend import get_backend, set_backend, use_backend
from .gradcheck import check_gradients, compare, numerical_gradient, rel_error
from .model import EfficientNet, MBConv, efficientnet
from .scaling import count_flops, count_parameters, make_config

__version__ = "0.1.0"
