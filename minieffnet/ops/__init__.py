"""Pure functions ``<op>_forward(...) -> (out, cache)`` and ``<op>_backward(dout, cache)``.

Every op works in float32 and float64 (output dtype follows input), has a NumPy reference and,
where speed matters, a Numba fast path; the depthwise convolution also has numba.cuda kernels.
:mod:`minieffnet.backend` chooses among them ("numpy", "numba", "cuda").

Module layout: ``<op>.py`` holds an op's maths, NumPy reference and public pair; a long
family of Numba kernels lives beside it in ``_<op>_numba.py``. Kernel names say what they
are: ``*_ref`` NumPy reference, ``*_numba`` / ``*_cuda`` the host function a backend runs,
``*_kernel`` a compiled Numba or CUDA kernel.
"""
from .activations import sigmoid_backward, sigmoid_forward, swish_backward, swish_forward
from .batchnorm import batchnorm2d_backward, batchnorm2d_forward
from .conv import conv2d_backward, conv2d_forward, pointwise_conv2d_backward, pointwise_conv2d_forward
from .linear import linear_backward, linear_forward
from .loss import softmax_cross_entropy
from .pooling import global_avg_pool_backward, global_avg_pool_forward
from .regularization import drop_connect_backward, drop_connect_forward, dropout_backward, dropout_forward
from .squeeze_excite import squeeze_excite_backward, squeeze_excite_forward
from .depthwise import depthwise_conv2d_backward, depthwise_conv2d_forward
from .depthwise_bn import depthwise_bn_eval_backward, depthwise_bn_eval_forward
from .conv_bn import conv_bn_eval_backward, conv_bn_eval_forward
from ._checks import NonFiniteError
