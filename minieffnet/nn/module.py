"""Module: the base of every layer and model.

A module owns :class:`Parameter` attributes, buffers (arrays that are state but not trained,
such as BatchNorm's running statistics, named in ``buffer_names``) and child modules. It runs
``forward(x)`` keeping what its backward needs, and ``backward(dout)`` returns the gradient with
respect to its input and *accumulates nothing*: it sets ``p.grad`` on its own parameters.

Names follow attribute order, dotted like PyTorch's (``blocks.3.se.reduce_weight``).

Calling a module, ``module(x)``, runs ``forward`` as a transaction: if it raises (bad input,
NaN / infinity met half-way, Ctrl-C), every buffer and the Generator of every stochastic
layer are put back as they were and the caches are dropped, so the module is unchanged and a
``backward`` then raises :class:`~minieffnet.errors.NoForwardError` instead of mixing the
caches of two passes. (``forward`` called directly, as the modules call each other, is not
guarded: that keeps the bookkeeping to one snapshot per call.)
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np

from ..errors import NoForwardError
from .parameter import Parameter


class Module:
    """Base class: parameters, buffers, children, train/eval mode and state dicts.

    A layer keeps what its backward needs in ``_cache`` (None until a forward succeeds) and
    reads it back with :meth:`_saved`.
    """

    buffer_names: tuple[str, ...] = ()
    _cache = None

    def __init__(self) -> None:
        self.training = True

    # --- computation -----------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with self._unchanged_on_error():
            return self.forward(x)

    def _saved(self):
        """The cache of the last successful forward; NoForwardError if there is none."""
        if self._cache is None:
            raise NoForwardError(f"{type(self).__name__}.backward: no forward pass to "
                                 "differentiate; call the module on an input first (a "
                                 "forward that failed leaves none)")
        return self._cache

    @contextlib.contextmanager
    def _unchanged_on_error(self):
        """Restore buffers and random streams and drop the caches if the body raises.

        Only training changes buffers (BatchNorm's running statistics) and draws random
        numbers, so evaluation snapshots nothing. Buffers are a few values per channel:
        copying them costs far less than one layer's forward.
        """
        buffers, generators = [], []
        if self.training:
            buffers = [b for _, b in self.named_buffers()]
            shared = {id(m.rng): m.rng for _, m in self.named_modules()
                      if isinstance(getattr(m, "rng", None), np.random.Generator)}
            generators = list(shared.values())
        saved = [b.copy() for b in buffers]
        states = [g.bit_generator.state for g in generators]
        try:
            yield
        except BaseException:
            for b, old in zip(buffers, saved):
                b[...] = old
            for g, state in zip(generators, states):
                g.bit_generator.state = state
            for _, module in self.named_modules():
                module._cache = None
            raise

    # --- structure -------------------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """All parameters, depth first in attribute order; also sets each ``p.name``."""
        for mod_name, module in self.named_modules(prefix):
            for name, value in vars(module).items():
                if isinstance(value, Parameter):
                    full = f"{mod_name}.{name}" if mod_name else name
                    value.name = full
                    yield full, value

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        for mod_name, module in self.named_modules():
            for name in module.buffer_names:
                yield (f"{mod_name}.{name}" if mod_name else name), getattr(module, name)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def astype(self, dtype) -> "Module":
        """Convert every parameter and buffer to ``dtype`` in place (float64 for grad checks)."""
        for _, p in self.named_parameters():
            p.data = p.data.astype(dtype)
            p.grad = None
        for _, module in self.named_modules():
            for name in module.buffer_names:
                setattr(module, name, getattr(module, name).astype(dtype))
        return self

    def set_rng(self, rng: np.random.Generator) -> "Module":
        """Give every stochastic layer (anything with an ``rng`` attribute) this Generator."""
        for _, module in self.named_modules():
            if hasattr(module, "rng"):
                module.rng = rng
        return self

    # --- mode ------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Training mode: batch statistics, dropout and stochastic depth active."""
        for _, module in self.named_modules():
            module.training = mode
        return self

    def eval(self) -> "Module":
        """Evaluation mode: running statistics, no dropout, no stochastic depth."""
        return self.train(False)

    # --- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, keyed by dotted name."""
        state = {name: p.data.copy() for name, p in self.named_parameters()}
        state.update({name: b.copy() for name, b in self.named_buffers()})
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy ``state`` into this module's parameters and buffers, in place.

        Raises ValueError listing missing keys, unexpected keys, or the first shape mismatch;
        nothing is modified unless the whole dict fits.
        """
        targets = {name: p.data for name, p in self.named_parameters()}
        targets.update(dict(self.named_buffers()))
        missing = sorted(set(targets) - set(state))
        unexpected = sorted(set(state) - set(targets))
        if missing or unexpected:
            raise ValueError(f"load_state_dict: missing keys {missing[:8]}"
                             f"{' ...' if len(missing) > 8 else ''}, unexpected keys "
                             f"{unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
        for name, target in targets.items():
            value = np.asarray(state[name])
            if value.shape != target.shape:
                raise ValueError(f"load_state_dict: {name} has shape {value.shape}, "
                                 f"the model expects {target.shape}")
        for name, target in targets.items():
            target[...] = state[name]


class Sequential(Module):
    """Children run in order; named ``0``, ``1``, ... like PyTorch's ``nn.Sequential``."""

    def __init__(self, *modules: Module):
        super().__init__()
        self.layers = list(modules)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for i, m in enumerate(self.layers):
            yield str(i), m

    def __iter__(self):
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def forward(self, x: np.ndarray) -> np.ndarray:
        for m in self.layers:
            x = m.forward(x)
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray:
        for m in reversed(self.layers):
            dout = m.backward(dout)
        return dout
