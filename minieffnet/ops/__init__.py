"""Pure functions ``<op>_forward(...) -> (out, cache)`` and ``<op>_backward(dout, cache)``.

Every op works in float32 and float64 (output dtype follows input), has a NumPy reference and,
where speed matters, a Numba fast path chosen by :mod:`minieffnet.backend`.
"""
from .activations import sigmoid_backward, sigmoid_forward, swish_backward, swish_forward
from .batchnorm import batchnorm2d_backward, batchnorm2d_forward
