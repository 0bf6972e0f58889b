# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 09 — Depthwise convolution on a GPU with `numba.cuda`
#
# **What you will learn**
#
# * the CUDA programming model in one idea: *one thread per output element*, threads grouped
#   in blocks, and the **bounds guard** every kernel needs because the last block overhangs;
# * how to write a kernel next to a NumPy *spec* and test one against the other, and how to
#   grade it by its **memory traffic** as Sasha Rush's GPU-Puzzles does: the simulator counts
#   every thread's global and shared reads and writes, and each kernel is held to a budget
#   derived from what it is meant to do;
# * the library's **tiled** kernel: a block copies its input tile plus a *halo* into shared
#   memory once, waits at a barrier, then every thread reads its k×k operands from fast
#   memory — and why that barrier must never sit inside a branch some threads skip;
# * that `"cuda"` is a backend like `"numpy"` and `"numba"`: under
#   `me.use_backend("cuda")` the same public `depthwise_conv2d_forward` / `_backward` run
#   these kernels and agree with the CPU op; and how to pick the naive or tiled kernels on
#   arrays that stay on the GPU;
# * what makes a kernel fast once it is correct: **coalesced** memory access (the threads of
#   a warp reading neighbouring addresses — our first kernel does not, and we fix it), the
#   **idle threads** of 16×16 tiles on EfficientNet's 7×7 maps, and, on a real GPU, the
#   kernels' measured bandwidth in GB/s next to the device's peak (lesson 11 does the same
#   for the CPU).
#
# **The ladder.** Three kernels, each a step up from the last, each checked against a spec
# *and* a traffic budget (section 1 explains the counting; each section derives its budget):
#
# | rung | kernel | the budget, per thread |
# |---|---|---|
# | 1 | `conv_plane_kernel`: one thread per output, a bounds guard | $k^2$ reads of x and of w, 1 write of out, nothing else |
# | 2 | `conv1d_tiled`: a shared tile with a halo, one barrier | ⌈(tile + halo) / threads⌉ = 2 global reads of x, each x element read once per block; $k$ shared reads |
# | 3 | `conv_plane_coalesced`: rung 1 with `threadIdx.x` on the column | rung 1's, and threads next to each other in `threadIdx.x` touch adjacent elements |
#
# **Exercise version:** `exercises/09_cuda_depthwise.ipynb` leaves the bounds guard, the
# tiled kernel with its barrier, the coalesced kernel and the exercises to you; the
# `### CHECK` cells grade them, answer and traffic, in the simulator (see
# `lessons/README.md`).
#
# **No GPU?** Numba ships a CUDA *simulator* that runs every thread as a Python thread on
# the CPU. It must be switched on *before numba is first imported*, which is why the first
# code cell sets `NUMBA_ENABLE_CUDASIM=1`. It is exact but slow (about 0.2 ms per thread),
# so every shape in this lesson is tiny. On a machine with an NVIDIA GPU, set the variable
# to `"0"` (before starting the kernel) and the same cells run on the device.
#
# Read along in `minieffnet/ops/depthwise_cuda.py`; lesson 03 derives the operation itself.

# %%
import ast
import inspect
import os
import sys
import textwrap
import threading
import time
from collections import Counter, defaultdict, namedtuple
from contextlib import contextmanager
from unittest import mock

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")   # "0" on a machine with a CUDA GPU

import numpy as np                                    # noqa: E402  (after the variable)
from numba import config as numba_config              # noqa: E402
from numba import cuda                                # noqa: E402

import minieffnet as me                               # noqa: E402
from minieffnet.ops import depthwise_cuda as dcuda    # noqa: E402
from minieffnet.scaling import network_layers         # noqa: E402

SIMULATOR = bool(numba_config.ENABLE_CUDASIM)
print("CUDA simulator" if SIMULATOR else "real GPU", "| cuda.is_available():", cuda.is_available())
assert cuda.is_available()
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. One thread per output
#
# A kernel is a function that *every* thread runs. A launch `kernel[blocks, threads](...)`
# starts `blocks × threads` copies; each finds out which one it is from
# `cuda.blockIdx`, `cuda.blockDim` and `cuda.threadIdx` (or `cuda.grid(d)`, which combines
# them into a global index) and computes the output element that index names.
#
# We start with a single channel: out = depthwise conv of an $H\times W$ image with a
# $k\times k$ filter, zero padding $p = k // 2$ ("same size"). First the spec in NumPy:

# %%
def conv_plane_spec(x, w):
    """One channel: x (H, W), w (k, k) -> (H, W), zero padding k // 2, stride 1."""
    k = w.shape[0]
    xp = np.pad(x, k // 2)
    H, W = x.shape
    return np.array([[np.sum(xp[i:i + k, j:j + k] * w) for j in range(W)] for i in range(H)])


# %% [markdown]
# **Grading by memory traffic.** A spec says whether a kernel's answer is right, not how it
# got there: a "tiled" kernel that still reads every operand from global memory gives the
# right answer too. GPU-Puzzles therefore also counts what each thread reads and writes, in
# global and in shared memory, and holds each puzzle to a budget. The simulator lets us do
# the same with little machinery:
#
# * it passes a kernel argument that is not a NumPy array to the kernel untouched, so
#   `count_traffic` wraps each array argument in `Counted`: an object with the array's
#   `shape` and `dtype` whose `__getitem__` / `__setitem__` log every element access;
# * it runs every CUDA thread as a Python thread that carries its `blockIdx` and
#   `threadIdx` (that is where `cuda.threadIdx` reads them), so the log knows which thread
#   made each access;
# * `cuda.shared.array` is its `FakeCUDAShared.array`, which hands every thread the same
#   NumPy array for the same line of the kernel; for the counted launch only, we replace it
#   by one that does the same with `Counted` arrays (all named `"shared"`).
#
# `traffic_problems` then compares the log with a budget: the most accesses any one thread
# makes to each array (an array or direction the budget does not name is not allowed at
# all); where asked, that a block reads each element of an array at most once; and where
# asked, that threads next to each other in `threadIdx.x` access the same or the next
# element (section 4 says why). `over_budget` does all of it for one launch and prints what
# it counted next to the budget. Counting needs the simulator: on a GPU it says so and
# grades nothing.

# %%
Access = namedtuple("Access", "block thread array op index flat")   # flat: C-order offset


class Counted:
    """Stands in for `array` inside a simulated kernel: every element read or write is
    appended to `log` as Access(blockIdx, threadIdx, name, "read" | "write", index, flat)."""

    def __init__(self, array, name, log):
        self.array, self.name, self.log = array, name, log
        self.shape, self.dtype, self.size = array.shape, array.dtype, array.size

    def _record(self, op, index):
        index = tuple(int(i) for i in (index if isinstance(index, tuple) else (index,)))
        thread = threading.current_thread()           # the simulated CUDA thread
        flat = int(np.ravel_multi_index(index, self.shape, mode="wrap"))
        self.log.append(Access(tuple(thread.blockIdx), tuple(thread.threadIdx), self.name, op,
                               index, flat))

    def __getitem__(self, index):
        value = self.array[index]                     # NumPy's bounds check first
        self._record("read", index)
        return value

    def __setitem__(self, index, value):
        self.array[index] = value
        self._record("write", index)


@contextmanager
def shared_arrays_counted(log):
    """While active, the simulator's cuda.shared.array returns Counted arrays: one per
    allocating line of the kernel, the same object for every thread, as the simulator does."""
    from numba.cuda.simulator.kernelapi import FakeCUDAShared
    made = {}

    def array(self, shape, dtype, alignment=None):
        line = sys._getframe(1)                       # the kernel line asking for the array
        return made.setdefault((line.f_code, line.f_lineno),
                               Counted(np.empty(shape, dtype), "shared", log))

    with mock.patch.object(FakeCUDAShared, "array", array):
        yield


def count_traffic(kernel, grid, block, *args):
    """Launch kernel[grid, block](*args) in the simulator with every NumPy argument (named
    after the kernel's parameter) and every shared array counted; the list of Access."""
    log = []
    names = inspect.signature(kernel.py_func).parameters
    counted = [Counted(a, name, log) if isinstance(a, np.ndarray) else a
               for a, name in zip(args, names)]
    with shared_arrays_counted(log):
        kernel[grid, block](*counted)
    return log


def most_per_thread(log):
    """{(array, op): (n, block, thread)}: the most accesses one thread made, and which one
    (the first such thread in (block, thread) order: the simulator's threads interleave)."""
    most = {}
    for (array, op, block, thread), n in sorted(Counter(
            (a.array, a.op, a.block, a.thread) for a in log).items()):
        if n > most.get((array, op), (0,))[0]:
            most[array, op] = (n, block, thread)
    return most


def lane_strides(log, array, op):
    """Counter of the distances, in elements, between the n-th accesses (`op`) to `array` of
    two threads next to each other in threadIdx.x (same block, y and z). Only pairs with as
    many accesses are compared: a thread that skips padding taps is out of step."""
    accesses = defaultdict(list)
    for a in log:
        if (a.array, a.op) == (array, op):
            accesses[a.block, a.thread].append(a.flat)
    strides = Counter()
    for (block, (tx, ty, tz)), mine in accesses.items():
        right = accesses.get((block, (tx + 1, ty, tz)), [])
        if len(right) == len(mine):
            strides.update(r - m for m, r in zip(mine, right))
    return strides


def traffic_problems(log, per_thread, once_per_block=(), coalesced=()):
    """How the accesses in `log` exceed a budget. per_thread: {(array, "read" | "write"): the
    most accesses one thread may make}, 0 for any pair it does not name; once_per_block:
    arrays whose elements a block may read at most once; coalesced: arrays that threads next
    to each other in threadIdx.x must access at the same or the next element. Empty: within."""
    most = most_per_thread(log)
    problems = [f"{array} {op}s: {most[array, op][0]} by thread {most[array, op][2]} of block "
                f"{most[array, op][1]}, budget {per_thread.get((array, op), 0)} per thread"
                for array, op in budget_order(per_thread, most)
                if most.get((array, op), (0,))[0] > per_thread.get((array, op), 0)]
    for array in once_per_block:
        reads = Counter((a.block, a.index) for a in log if (a.array, a.op) == (array, "read"))
        (block, index), n = max(sorted(reads.items()), key=lambda item: item[1],
                                default=((None, None), 0))
        if n > 1:
            problems.append(f"{array} reads: block {block} read {array}{list(index)} {n} "
                            f"times, budget once per block")
    for array in coalesced:
        for op in ("read", "write"):
            strides = lane_strides(log, array, op)
            apart = {d: n for d, n in sorted(strides.items()) if d not in (0, 1)}
            if apart:
                problems.append(f"{array} {op}s: threads next to each other in threadIdx.x "
                                f"touch elements {max(apart, key=apart.get)} apart "
                                f"({sum(apart.values())} of {sum(strides.values())} pairs), "
                                f"budget 0 or 1 apart")
    return problems


def budget_order(per_thread, most):
    """The (array, op) pairs of the budget, then those counted outside it."""
    return list(per_thread) + [key for key in most if key not in per_thread]


def over_budget(kernel, grid, block, args, per_thread, once_per_block=(), coalesced=()):
    """traffic_problems of one counted launch of `kernel`, after printing the most accesses
    one thread made to each array next to its budget. On a GPU nothing can be counted: it
    says so and returns []."""
    name = kernel.py_func.__name__
    if not SIMULATOR:
        print(f"{name}: traffic not counted on a real GPU (the simulator grades it)")
        return []
    log = count_traffic(kernel, grid, block, *args)
    most = most_per_thread(log)
    print(f"{name}, most per thread (budget): " + ", ".join(
        f"{array} {op}s {most.get((array, op), (0,))[0]} ({per_thread.get((array, op), 0)})"
        for array, op in budget_order(per_thread, most)))
    problems = traffic_problems(log, per_thread, once_per_block, coalesced)
    for problem in problems:
        print("    over budget:", problem)
    return problems


# %% [markdown]
# Then the kernel. Thread `(i, j)` computes `out[i, j]`: it sums the $k^2$ taps
# `w[ky, kx] * x[i - k//2 + ky, j - k//2 + kx]`, skipping the taps that fall into the zero
# padding. We launch a whole number of blocks of 4×4 threads, so a 6×6 output needs 2×2
# blocks = 8×8 threads: 28 of them have no output. Without the **guard**
# `if i < H and j < W` they would write past the end of `out` — on a GPU that is silent
# memory corruption (or a crash much later). *(Exercise version: write the body, guard
# first.)*
#
# **Budget (rung 1).** Thread `(i, j)` needs the $k^2$ values of x around `(i, j)` and the
# $k^2$ weights, and produces one number: at most $k^2$ reads of x and of w and **one** write
# of out per thread, and nothing else. In particular no reads of out: the sum is kept in a
# register (`acc`) and stored once, not accumulated in global memory. (A budget is a
# maximum: threads whose taps fall into the padding read less, idle threads nothing.)

# %%
x_plane = rng.standard_normal((6, 6))
w_plane = rng.standard_normal((3, 3))
threads = (4, 4)
blocks = ((6 + threads[0] - 1) // threads[0], (6 + threads[1] - 1) // threads[1])


@cuda.jit
def conv_plane_kernel(x, w, out):
    i, j = cuda.grid(2)                 # = blockIdx * blockDim + threadIdx, per axis
    H, W = out.shape
    k = w.shape[0]
    ### BEGIN SOLUTION
    if i < H and j < W:                 # the bounds guard
        acc = x.dtype.type(0)           # accumulate in x's precision (float32 stays float32)
        for ky in range(k):
            for kx in range(k):
                iy, ix = i - k // 2 + ky, j - k // 2 + kx
                if 0 <= iy < H and 0 <= ix < W:      # zero padding: skip outside taps
                    acc += w[ky, kx] * x[iy, ix]
        out[i, j] = acc
    ### END SOLUTION


# %%
### CHECK: the guarded kernel against the spec, on 6x6 and on a 5x7 plane (idle threads)
out_plane = np.zeros((6, 6))
conv_plane_kernel[blocks, threads](x_plane, w_plane, out_plane)   # NumPy in: copied both ways
print(f"launched {blocks} blocks of {threads} threads for a 6x6 output")
print(me.compare("kernel vs spec", out_plane, conv_plane_spec(x_plane, w_plane)))
assert np.allclose(out_plane, conv_plane_spec(x_plane, w_plane), rtol=1e-12, atol=1e-12)
x57, out57 = rng.standard_normal((5, 7)), np.zeros((5, 7))
conv_plane_kernel[(2, 2), threads](x57, w_plane, out57)            # 8x8 threads, 35 outputs
assert np.allclose(out57, conv_plane_spec(x57, w_plane), rtol=1e-12, atol=1e-12)
plane_budget = {("x", "read"): w_plane.size, ("w", "read"): w_plane.size, ("out", "write"): 1}
problems = over_budget(conv_plane_kernel, blocks, threads, (x_plane, w_plane, np.zeros((6, 6))),
                       plane_budget)
assert problems == [], problems

# %% [markdown]
# The same check on the library's CPU op (a channel is one `(1, 1, H, W)` slice; its
# default `"symmetric"` padding is our $k // 2$):

# %%
cpu_plane, _ = me.ops.depthwise_conv2d_forward(x_plane[None, None], w_plane[None, None])
print(me.compare("spec vs CPU op", conv_plane_spec(x_plane, w_plane), cpu_plane[0, 0]))
assert np.allclose(conv_plane_spec(x_plane, w_plane), cpu_plane[0, 0], rtol=1e-12, atol=1e-12)

# %% [markdown]
# The simulator checks every index, so it *shows* what the guard prevents: the same kernel
# without it raises an `IndexError` from a thread with no output. (On a real GPU this cell
# is skipped — there the bad write would not be reported.)

# %%
@cuda.jit
def conv_plane_unguarded(x, w, out):
    i, j = cuda.grid(2)
    H, W = out.shape
    k = w.shape[0]
    acc = x.dtype.type(0)
    for ky in range(k):
        for kx in range(k):
            iy, ix = i - k // 2 + ky, j - k // 2 + kx
            if 0 <= iy < H and 0 <= ix < W:
                acc += w[ky, kx] * x[iy, ix]
    out[i, j] = acc                     # i or j may be 6 or 7 here


if SIMULATOR:
    try:
        conv_plane_unguarded[blocks, threads](x_plane, w_plane, np.zeros((6, 6)))
        raised = None
    except Exception as e:                # noqa: BLE001  (the simulator wraps the IndexError)
        raised = e
    print("unguarded launch:", type(raised).__name__, str(raised).splitlines()[0][:100])
    assert raised is not None

# %% [markdown]
# The library's `_forward_naive_kernel` is this kernel for the full `(N, C, H, W)` tensor:
# a 1-D grid over all `N·C·Ho·Wo` outputs (128 threads a block), the flat index `i` split
# back into `(n, c, oy, ox)`, the guard `if i >= N*C*Ho*Wo: return`, any stride and
# padding.
#
# ## 2. Why tile: shared memory and the halo
#
# Each naive thread reads $k^2$ values of x from *global* memory (the GPU's DRAM, hundreds
# of cycles away), and its neighbours read almost the same ones. The tiled kernel gives a
# block of 16×16 threads one 16×16 tile of one channel's output and proceeds in two phases:
#
# 1. **load** — all 256 threads together copy the input rows and columns the tile needs
#    into a `cuda.shared.array` (fast on-chip memory shared by the block): the tile *plus a
#    halo* of $k-1$ extra rows and columns, i.e. $(16-1)\cdot s + k$ per side for stride $s$,
#    with zeros where the halo falls into the padding; and the channel's $k\times k$ filter;
# 2. `cuda.syncthreads()` — a **barrier**: no thread continues until every thread of the
#    block has arrived, so the whole tile is in shared memory before anyone reads it;
# 3. **compute** — each thread reads its $k^2$ operands from shared memory, and only threads
#    whose output lies inside the image store it.
#
# Global reads of x per output fall from $k^2$ to about $(15s + k)^2 / 256$:

# %%
for k in (3, 5):
    for s in (1, 2):
        span = (dcuda._TILE - 1) * s + k
        print(f"k={k} stride={s}: naive {k * k:2d} loads/output, tiled {span}x{span} patch "
              f"= {span * span / dcuda._TILE ** 2:.2f} loads/output")
assert dcuda._PATCH >= (dcuda._TILE - 1) * 2 + 5     # the shared array fits k=5, stride 2

# %% [markdown]
# **The barrier rule.** `cuda.syncthreads()` waits for *all* threads of the block. If it
# stood inside `if oy < Ho and ox < Wo:` — or after an early `return` for the threads
# outside the image, as the naive kernel does — the threads of an edge tile that skip it
# never arrive: the block deadlocks, or on some hardware silently continues with a
# half-loaded tile. So the library's kernel lets *every* thread help with the load and
# reach the barrier, and applies the bounds guard only to the final store:
#
# ```python
# _load_patch(x, n, c, oy0 * stride - pt, ox0 * stride - pl, span, span, patch, tid)
# _load_filter(w, c, k, wk, tid)
# cuda.syncthreads()              # every thread gets here: nobody returned early
# oy, ox = oy0 + ty, ox0 + tx
# if oy < Ho and ox < Wo:         # the guard, after the barrier
#     ...
# ```
#
# The same rule governs the weight-gradient kernel `_dw_reduce_kernel`: a tree reduction in
# shared memory halves the number of active threads each round (`if tid < half`), but the
# `syncthreads()` of each round sits *outside* that `if`.
#
# The simulator cannot show this deadlock: it lets a block's remaining threads pass a
# barrier once the others have returned. So we check the rule where it can always be
# checked, in the source. `barrier_problems` reads a kernel's Python source and reports every
# `cuda.syncthreads()` that sits inside an `if`, and every `return` that comes before one.
# (A barrier inside a loop is fine when every thread runs the loop equally often, like the
# reduction's `while half > 0`; a source check cannot tell that, so it allows loops.)

# %%
def barrier_problems(kernel):
    """Places where `kernel` (a cuda.jit function) breaks the barrier rule, read from its
    source: a cuda.syncthreads() inside an `if` or a conditional expression, a `return`
    before a cuda.syncthreads(), or no barrier at all. An empty list: no problem found."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(kernel.py_func)))
    problems, barriers, returns = [], [], []

    def walk(node, branch):
        for child in ast.iter_child_nodes(node):
            if (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)
                    and child.func.attr == "syncthreads"):
                barriers.append(child.lineno)
                if branch:
                    problems.append(f"line {child.lineno}: syncthreads() inside an if")
            if isinstance(child, ast.Return):
                returns.append(child.lineno)
            walk(child, branch or isinstance(child, (ast.If, ast.IfExp)))

    walk(tree, False)
    if not barriers:
        problems.append("no cuda.syncthreads(): nothing orders the loads before the reads")
    problems += [f"line {r}: return before the barrier on line {max(barriers)}"
                 for r in returns if barriers and r < max(barriers)]
    return problems


@cuda.jit
def bad_tiled_store(x, out):
    tile = cuda.shared.array(8, dtype=np.float64)
    i = cuda.grid(1)
    if i >= x.shape[0]:
        return                                   # the edge block's extra threads leave ...
    tile[cuda.threadIdx.x] = x[i]
    cuda.syncthreads()                           # ... and never arrive here
    out[i] = tile[7 - cuda.threadIdx.x]


for kernel in (dcuda._forward_tiled_kernel, dcuda._dx_tiled_kernel, dcuda._dw_reduce_kernel,
               bad_tiled_store):
    print(f"{kernel.py_func.__name__:>22}: {barrier_problems(kernel) or 'ok'}")
    assert (barrier_problems(kernel) != []) == (kernel is bad_tiled_store)

# %% [markdown]
# Here is the idea in one dimension, small enough to read in full: a 1-D convolution with
# a 3-tap filter, blocks of 8 threads, a shared tile of 8 + 2 halo values. Thread `t` of
# block `b` computes `out[b*8 + t]`. *(Exercise version: write the body.)* The block's
# threads first copy `x[b*8 - 1 : b*8 + 9]` into `tile` (10 values with 8 threads: a strided
# loop, zeros where the index falls outside `x`), wait at the barrier, and then each thread
# whose output exists sums its three taps from `tile`.
#
# **Budget (rung 2).** A block needs TPB + K1 − 1 = 10 values of x, its tile plus halo. With
# 8 threads sharing the copy that is at most ⌈10 / 8⌉ = 2 global reads of x per thread, and
# no element of x read twice by one block. Each thread writes at most 2 values into `tile`,
# reads its K1 = 3 taps from it, reads the K1 weights from global memory (a real kernel
# would stage them in shared memory too, as the library's does), and writes one output.

# %%
TPB, K1 = 8, 3


@cuda.jit
def conv1d_tiled(x, w, out):
    tile = cuda.shared.array(TPB + K1 - 1, dtype=np.float64)
    t = cuda.threadIdx.x
    i = cuda.blockIdx.x * TPB + t                # this thread's output
    start = cuda.blockIdx.x * TPB - K1 // 2      # first input the block needs (padding 1)
    ### BEGIN SOLUTION
    # load: TPB + K1 - 1 values with TPB threads -> a strided loop; zeros outside x
    for j in range(t, TPB + K1 - 1, TPB):
        src = start + j
        tile[j] = x[src] if 0 <= src < x.shape[0] else 0.0
    cuda.syncthreads()                           # reached by every thread
    if i < out.shape[0]:                         # guard only the store
        acc = 0.0
        for kk in range(K1):
            acc += w[kk] * tile[t + kk]
        out[i] = acc
    ### END SOLUTION


def conv1d_spec(x, w):
    xp = np.pad(x, K1 // 2)
    return np.array([np.dot(xp[i:i + K1], w) for i in range(len(x))])


TILE_LOADS = -(-(TPB + K1 - 1) // TPB)          # ceil((tile + halo) / threads) = 2
tile_budget = {("x", "read"): TILE_LOADS, ("w", "read"): K1, ("shared", "write"): TILE_LOADS,
               ("shared", "read"): K1, ("out", "write"): 1}


# %% [markdown]
# **A barrier is not a tile.** The barrier rule and the spec together still pass a kernel
# that allocates a shared array, calls `syncthreads()` and then reads all its operands from
# global memory: right answers, none of the benefit. So the check below also reads the
# source for the tile itself. `tile_problems(kernel, tiled)` requires
# that after the kernel's last `syncthreads()` it reads a `cuda.shared.array` and no longer
# indexes the global array `tiled` it was meant to tile. The library's tiled kernels pass
# (the forward tiles `x`, the input gradient `dout`); a 1-D kernel with a dummy barrier
# matches the spec and keeps the barrier rule, but fails it.

# %%
def tile_problems(kernel, tiled):
    """Why `kernel` (a cuda.jit function) does not compute from a shared-memory tile of its
    argument `tiled`, read from its source: no cuda.shared.array, no read of one after the
    last cuda.syncthreads(), or an index into `tiled` itself after it. Empty: a tile is used."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(kernel.py_func)))
    nodes = list(ast.walk(tree))
    shared = {target.id for node in nodes if isinstance(node, ast.Assign)
              and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Attribute)
              and node.value.func.attr == "array" and "shared" in ast.unparse(node.value.func)
              for target in node.targets if isinstance(target, ast.Name)}
    barriers = [node.lineno for node in nodes if isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute) and node.func.attr == "syncthreads"]
    if not shared or not barriers:
        return [what for what, missing in (("no cuda.shared.array", not shared),
                                           ("no cuda.syncthreads()", not barriers)) if missing]
    reads = [(node.value.id, node.lineno) for node in nodes if isinstance(node, ast.Subscript)
             and isinstance(node.ctx, ast.Load) and isinstance(node.value, ast.Name)
             and node.lineno > max(barriers)]
    problems = [f"line {line}: reads {tiled}[...] from global memory after the barrier"
                for name, line in reads if name == tiled]
    if not any(name in shared for name, _ in reads):
        problems.append(f"never reads the shared array ({', '.join(sorted(shared))}) after the barrier")
    return problems


@cuda.jit
def conv1d_dummy_barrier(x, w, out):
    tile = cuda.shared.array(TPB + K1 - 1, dtype=np.float64)   # allocated, never used
    i = cuda.grid(1)
    cuda.syncthreads()                           # a barrier with nothing to wait for
    if i < out.shape[0]:
        acc = 0.0
        for kk in range(K1):
            src = i - K1 // 2 + kk
            acc += w[kk] * (x[src] if 0 <= src < x.shape[0] else 0.0)   # global memory
        out[i] = acc


rng_dummy = np.random.default_rng(1)            # its own stream: later cells draw as before
x_dummy, w_dummy = rng_dummy.standard_normal(19), rng_dummy.standard_normal(K1)
out_dummy = np.zeros_like(x_dummy)
conv1d_dummy_barrier[(len(x_dummy) + TPB - 1) // TPB, TPB](x_dummy, w_dummy, out_dummy)
print(me.compare("dummy barrier vs spec", out_dummy, conv1d_spec(x_dummy, w_dummy)))
for kernel, tiled in ((dcuda._forward_tiled_kernel, "x"), (dcuda._dx_tiled_kernel, "dout"),
                      (conv1d_dummy_barrier, "x")):
    print(f"{kernel.py_func.__name__:>22}: barrier rule {barrier_problems(kernel) or 'ok'}; "
          f"tile {tile_problems(kernel, tiled) or 'ok'}")
    assert barrier_problems(kernel) == []
    assert (tile_problems(kernel, tiled) != []) == (kernel is conv1d_dummy_barrier)
assert np.allclose(out_dummy, conv1d_spec(x_dummy, w_dummy), rtol=1e-12, atol=1e-12)  # right, untiled

# %% [markdown]
# **Counted, not read.** A source check reads names, not traffic. Rung 2's budget counts
# what the kernel does, so it also catches what the source check cannot see. Three kernels
# that match the spec and keep the barrier rule, each launched on 19 values (3 blocks):
#
# * the dummy barrier reads all K1 taps from x: 3 global reads per thread, and each x
#   element 3 times per block;
# * `conv1d_global_taps` loads its tile correctly and then reads its taps from x anyway, in
#   the inner loop: 2 + 3 = 5 global reads per thread;
# * `conv1d_whole_tile` computes from its tile, so `tile_problems` passes it, but every
#   thread copies the *whole* tile: 10 global reads and 10 shared writes per thread, each
#   x element read by all 8 threads of a block.
#
# Each line below is what was counted against the budget.

# %%
@cuda.jit(device=True)
def load_tile(x, tile, first, step):
    """This thread's share of the block's tile: tile[j] = x[block start - 1 + j] for
    j = first, first + step, ... < TPB + K1 - 1, zero outside x."""
    start = cuda.blockIdx.x * TPB - K1 // 2
    for j in range(first, TPB + K1 - 1, step):
        tile[j] = x[start + j] if 0 <= start + j < x.shape[0] else 0.0


@cuda.jit
def conv1d_global_taps(x, w, out):
    tile = cuda.shared.array(TPB + K1 - 1, dtype=np.float64)
    i = cuda.grid(1)
    load_tile(x, tile, cuda.threadIdx.x, TPB)    # the tile is loaded as in conv1d_tiled ...
    cuda.syncthreads()
    if i < out.shape[0]:
        acc = 0.0
        for kk in range(K1):                     # ... and the taps still come from x
            src = i - K1 // 2 + kk
            acc += w[kk] * (x[src] if 0 <= src < x.shape[0] else 0.0)
        out[i] = acc


@cuda.jit
def conv1d_whole_tile(x, w, out):
    tile = cuda.shared.array(TPB + K1 - 1, dtype=np.float64)
    t, i = cuda.threadIdx.x, cuda.grid(1)
    load_tile(x, tile, 0, 1)                     # every thread copies all 10 values
    cuda.syncthreads()
    if i < out.shape[0]:                         # the K1 = 3 taps, from the tile
        out[i] = w[0] * tile[t] + w[1] * tile[t + 1] + w[2] * tile[t + 2]


blocks_1d = (len(x_dummy) + TPB - 1) // TPB
for kernel in (conv1d_dummy_barrier, conv1d_global_taps, conv1d_whole_tile):
    out_bad = np.zeros_like(x_dummy)
    kernel[blocks_1d, TPB](x_dummy, w_dummy, out_bad)
    assert np.allclose(out_bad, conv1d_spec(x_dummy, w_dummy), rtol=1e-12, atol=1e-12)
    assert barrier_problems(kernel) == []
    problems = over_budget(kernel, blocks_1d, TPB, (x_dummy, w_dummy, np.zeros_like(x_dummy)),
                           tile_budget, once_per_block=("x",))
    print(f"    source check (tile_problems): {tile_problems(kernel, 'x') or 'ok'}")
    assert (tile_problems(kernel, "x") == []) == (kernel is conv1d_whole_tile)
    assert not SIMULATOR or {p.split(":")[0] for p in problems} == {"x reads"} | (
        {"shared writes"} if kernel is conv1d_whole_tile else set())

# %% [markdown]
# The library's 2-D tiled kernels are held to the same kind of budget. A 16×16 block loads a
# patch `span` values wide, `span` $= (16-1)s + k$ for the forward (section 2's table), so
# each thread makes at most ⌈span² / 256⌉ global reads of the tiled input — the
# $(\text{tile} + \text{halo})^2 / \text{threads}$, rounded up, of the table above — and a
# block reads each of its elements once; the $k^2 \le 49$ weights are copied by the first
# $k^2$ threads, one each. Every thread writes ⌈span² / 256⌉ patch values and at most one
# weight into shared memory, reads $k^2$ weights and $k^2$ patch values from it, and stores
# one output. The input gradient tiles `dout` the same way, with
# `span` $= \lfloor (16 + k - 2 + s - 1) / s \rfloor + 1$. On a 20×20 plane (at stride 1, 4
# tiles of 256 threads; the first tile's 18×18 patch lies almost all inside the image, so
# some of its threads make the 2 reads the budget allows):

# %%
x20, dout20 = rng_dummy.standard_normal((1, 1, 20, 20)), rng_dummy.standard_normal((1, 1, 20, 20))
for kernel, tiled, k, stride in ((dcuda._forward_tiled_kernel, x20, 3, 1),
                                 (dcuda._forward_tiled_kernel, x20, 5, 2),
                                 (dcuda._dx_tiled_kernel, dout20, 3, 1)):
    w20 = rng_dummy.standard_normal((1, 1, k, k))
    p = (k - 1) // 2
    if kernel is dcuda._forward_tiled_kernel:
        want, _ = me.ops.depthwise_conv2d_forward(x20, w20, stride)
        name, result, span = "x", "out", (dcuda._TILE - 1) * stride + k
    else:
        _, cache = me.ops.depthwise_conv2d_forward(x20, w20, stride)
        want, _ = me.ops.depthwise_conv2d_backward(dout20, cache)
        name, result, span = "dout", "dx", (dcuda._TILE + k - 2 + stride - 1) // stride + 1
    loads = -(-span * span // dcuda._TILE ** 2)
    budget = {(name, "read"): loads, ("w", "read"): 1, ("shared", "write"): loads + 1,
              ("shared", "read"): 2 * k * k, (result, "write"): 1}
    got = np.zeros_like(want)
    print(f"k={k} stride={stride} span={span}: ", end="")
    problems = over_budget(kernel, *dcuda._tiles(*want.shape), (tiled, w20, got, stride, p, p),
                           budget, once_per_block=(name, "w"))
    assert problems == [], problems
    assert not SIMULATOR or me.rel_error(got, want) < 1e-12, "counting changed the result"

# %%
### CHECK: the 1-D tiled kernel: barrier rule, reads its tile, the spec, rung 2's budget
print("barrier rule:", barrier_problems(conv1d_tiled) or "ok")
assert barrier_problems(conv1d_tiled) == [], barrier_problems(conv1d_tiled)
print("tile:", tile_problems(conv1d_tiled, "x") or "ok")
assert tile_problems(conv1d_tiled, "x") == [], tile_problems(conv1d_tiled, "x")
problems = over_budget(conv1d_tiled, blocks_1d, TPB, (x_dummy, w_dummy, np.zeros_like(x_dummy)),
                       tile_budget, once_per_block=("x",))
assert problems == [], problems
for n in (19, 8, 3):                             # 19: 3 blocks, 5 idle threads
    x1 = rng.standard_normal(n)
    w1 = rng.standard_normal(K1)
    out1 = np.zeros_like(x1)
    conv1d_tiled[(len(x1) + TPB - 1) // TPB, TPB](x1, w1, out1)
    print(me.compare(f"1-D tiled vs spec, n={n}", out1, conv1d_spec(x1, w1)))
    assert np.allclose(out1, conv1d_spec(x1, w1), rtol=1e-12, atol=1e-12)

# %% [markdown]
# ## 3. The library's kernels behind the public op
#
# `"cuda"` is one of minieffnet's backends (lesson 00). Under `me.use_backend("cuda")` the
# same `me.ops.depthwise_conv2d_forward` / `_backward` copy their NumPy arguments to the
# device, launch the tiled kernels and copy the results back; the cache holds the same plain
# arrays as on the CPU, so a forward on the GPU may be followed by a backward on the CPU.
# The other ops have no CUDA kernels and run their Numba path under `"cuda"`, which is why
# `with me.use_backend("cuda"): model(x)` runs a whole network.
#
# To choose the kernels, and to keep arrays on the GPU between calls, the kernel module has
# device entry points: `dcuda.depthwise_conv2d_forward_device(x_d, w_d, stride, padding,
# method)` takes `cuda.to_device` arrays and returns `(out_d, cache)`, and
# `dcuda.depthwise_conv2d_backward_device(dout_d, cache)` returns `(dx_d, dw_d)`, all on the
# device; `method` is `"tiled"` or `"naive"`. The tiled forward launches one block per
# (sample, channel, tile): a grid of `(N·C, tiles)` blocks of 16×16 threads. With N = 1,
# C = 2 and a 6×6 image that is 2 blocks and 512 threads — about 0.1 s in the simulator.
#
# We test the public op under `"cuda"` and both methods on device arrays, both paddings,
# strides 1 and 2 and kernels 3 and 5 in float64, where the only difference from the CPU op
# is the order of the additions. The public op runs the tiled kernels, so of the `"tiled"`
# device route we run only the forward: its backward is the one the public op just ran (and
# its weight-gradient reduction, 128 threads for each of the C·k² weights, is the slowest
# launch in the simulator, about a second).

# %%
def on_device(x, w, stride, padding, dout, method, backward=True):
    """Forward (and backward) through the device entry points, results copied back."""
    out_d, cache_d = dcuda.depthwise_conv2d_forward_device(
        cuda.to_device(x), cuda.to_device(w), stride, padding, method)
    if not backward:
        return out_d.copy_to_host(), None, None
    dx_d, dw_d = dcuda.depthwise_conv2d_backward_device(cuda.to_device(dout), cache_d)
    return out_d.copy_to_host(), dx_d.copy_to_host(), dw_d.copy_to_host()


N, C, H, W = 1, 2, 6, 6
x = rng.standard_normal((N, C, H, W))
cases = [(3, 1, "symmetric"), (3, 2, "same"), (5, 2, "symmetric")]
for k, stride, padding in cases:
    w = rng.standard_normal((C, 1, k, k))
    cpu, cache = me.ops.depthwise_conv2d_forward(x, w, stride, padding)
    dout = rng.standard_normal(cpu.shape)
    dx_cpu, dw_cpu = me.ops.depthwise_conv2d_backward(dout, cache)
    with me.use_backend("cuda"):
        gpu, gpu_cache = me.ops.depthwise_conv2d_forward(x, w, stride, padding)
        results = {"op/cuda": (gpu, *me.ops.depthwise_conv2d_backward(dout, gpu_cache))}
    for method in dcuda.METHODS:
        results[method] = on_device(x, w, stride, padding, dout, method,
                                    backward=method != "tiled")
    for route, (out, dx, dw) in results.items():
        tag = f"k={k} s={stride} {padding:<9} {route:<7}"
        for name, got, want in (("out", out, cpu), ("dx ", dx, dx_cpu), ("dw ", dw, dw_cpu)):
            if got is None:                      # the tiled route's backward: see above
                continue
            print(me.compare(f"{tag} {name}", got, want))
            assert got.shape == want.shape and me.rel_error(got, want) < 1e-12, (tag, name)

# %% [markdown]
# float32 works too (the kernels accumulate in the input's precision), and under `"cuda"`
# the op refuses what it refuses on the CPU (the checks run before a backend is picked),
# for example a filter with the wrong number of channels:

# %%
x32 = x.astype(np.float32)
w32 = rng.standard_normal((C, 1, 3, 3)).astype(np.float32)
with me.use_backend("cuda"):
    out32, _ = me.ops.depthwise_conv2d_forward(x32, w32)
cpu32, _ = me.ops.depthwise_conv2d_forward(x32, w32)
print(me.compare("float32 out", out32, cpu32, rtol=1e-5, atol=1e-6))
assert out32.dtype == np.float32 and np.allclose(out32, cpu32, rtol=1e-5, atol=1e-6)
try:
    with me.use_backend("cuda"):
        me.ops.depthwise_conv2d_forward(x, rng.standard_normal((C + 1, 1, 3, 3)))
    refused = None
except ValueError as e:
    refused = e
print("refused:", refused)
assert refused is not None

# %% [markdown]
# ## 4. Coalescing: which thread reads which address
#
# Correct is not yet fast. A GPU runs threads in **warps** of 32, in the order of their
# linear index in the block, `tid = threadIdx.x + blockDim.x * threadIdx.y`: `threadIdx.x`
# varies fastest. A warp executes each load instruction for its 32 threads together, and
# the memory system serves it in 32-byte **sectors**. If the 32 threads read 32 neighbouring
# float32 values (128 bytes), that is 4 sectors and every byte fetched is used: the access is
# *coalesced*. If they read 32 values a row apart, that is 32 sectors, each carrying 4
# useful bytes out of 32 — an eighth of the bandwidth.
#
# Look at section 1's kernel again: `i, j = cuda.grid(2)` gives the **row** `i` from the x
# dimension, so the threads of a warp, consecutive in `threadIdx.x`, take consecutive
# *rows* of a row-major (C-order) plane: their addresses are `W` values apart. The library's
# kernels do the opposite: the tiled kernels use `tx = cuda.threadIdx.x` as the output
# column and load the patch with consecutive `tid` along a row (`_load_patch`), and the
# naive kernel splits its flat index as `ox = i % Wo` (the column varies fastest).
#
# A small model makes it concrete: the sectors one warp's first tap load touches, for a
# 16×16 block on a 112-wide float32 plane (B0's early maps at 224 px).

# %%
SECTOR = 32                                     # bytes per memory transaction unit


def warp_sectors(rows, cols, width, itemsize=4):
    """Distinct 32-byte sectors the 32 threads of a warp touch when thread t reads element
    (rows[t], cols[t]) of a row-major plane `width` values wide."""
    addresses = (np.asarray(rows) * width + np.asarray(cols)) * itemsize
    return len(np.unique(addresses // SECTOR))


W_plane, tid = 112, np.arange(32)               # the first warp of block (0, 0)
tx, ty = tid % 16, tid // 16                    # a 16x16 block: threadIdx.x fastest
span = (dcuda._TILE - 1) * 1 + 3                # the tiled forward's patch row, k = 3, stride 1
patterns = {
    "section 1: i, j = cuda.grid(2)  (x -> row)": (tx, ty),
    "fixed:     j, i = cuda.grid(2)  (x -> col)": (ty, tx),
    "library naive, 1-D: ox = i % Wo": (tid // W_plane, tid % W_plane),
    "library tiled patch load": (tid // span, tid % span),
}
print(f"{'pattern':<45}{'sectors':>8}{'useful':>8}")
sectors = {}
for name, (rows, cols) in patterns.items():
    sectors[name] = warp_sectors(rows, cols, W_plane)
    print(f"{name:<45}{sectors[name]:>8}{128 / (SECTOR * sectors[name]):>8.0%}")
assert sectors["section 1: i, j = cuda.grid(2)  (x -> row)"] == 16
assert sectors["fixed:     j, i = cuda.grid(2)  (x -> col)"] <= 4
assert sectors["library naive, 1-D: ox = i % Wo"] <= 5 and sectors["library tiled patch load"] <= 5

# %% [markdown]
# With 16-wide blocks a warp spans two rows of the block, so section 1's kernel touches 16
# sectors (two useful values in each) where 4 would do; with 32-wide blocks it would be 32.
# Caches soften this on real hardware (the neighbouring threads' later taps hit the lines
# these loads brought in), but the first pass over the data pays it in full, and the
# stores — one per thread, `out[i, j]` — are scattered the same way.
#
# The fix is to swap the roles: the x dimension of the grid indexes **columns**, and the
# launch grid is laid out as (column blocks, row blocks). *(Exercise: write
# `conv_plane_coalesced`, section 1's kernel with that mapping. The check launches it on a
# 5×19 plane with blocks of 8×4 threads, a grid of 3 column blocks by 2 row blocks.)*
#
# **Budget (rung 3).** Rung 1's counts — coalescing changes *which* addresses a thread
# reads, not how many — and the access pattern itself, measured: over every pair of threads
# next to each other in `threadIdx.x` (one lane apart in the same warp: with 8 threads a row
# the pair never straddles a warp), the distance between their n-th accesses to x, and
# between their writes to out, must be 0 (both read the same value) or 1 element (the next
# one). Pairs where one thread skips padding taps the other reads are out of step and not
# compared. Section 1's kernel, launched with the same block shape, fails it: its
# neighbouring lanes are a row, 19 elements, apart.

# %%
@cuda.jit
def conv_plane_coalesced(x, w, out):
    ### BEGIN SOLUTION
    j, i = cuda.grid(2)                 # x -> column j: a warp reads along a row
    H, W = out.shape
    k = w.shape[0]
    if i < H and j < W:
        acc = x.dtype.type(0)
        for ky in range(k):
            for kx in range(k):
                iy, ix = i - k // 2 + ky, j - k // 2 + kx
                if 0 <= iy < H and 0 <= ix < W:
                    acc += w[ky, kx] * x[iy, ix]
        out[i, j] = acc
    ### END SOLUTION


# %%
### CHECK: the coalesced kernel, x -> columns, on a plane that is not square
x519, out519 = rng.standard_normal((5, 19)), np.zeros((5, 19))
threads_c = (8, 4)                                           # (columns, rows) per block
blocks_c = ((19 + threads_c[0] - 1) // threads_c[0], (5 + threads_c[1] - 1) // threads_c[1])
conv_plane_coalesced[blocks_c, threads_c](x519, w_plane, out519)
print(f"grid {blocks_c} of blocks {threads_c}")
print(me.compare("coalesced kernel vs spec", out519, conv_plane_spec(x519, w_plane)))
assert np.allclose(out519, conv_plane_spec(x519, w_plane), rtol=1e-12, atol=1e-12)
problems = over_budget(conv_plane_coalesced, blocks_c, threads_c,
                       (x519, w_plane, np.zeros((5, 19))), plane_budget, coalesced=("x", "out"))
assert problems == [], problems
grid_rows_first = (-(-5 // threads_c[0]), -(-19 // threads_c[1]))       # section 1: x -> rows
rows_first = over_budget(conv_plane_kernel, grid_rows_first, threads_c,
                         (x519, w_plane, np.zeros((5, 19))), plane_budget, coalesced=("x", "out"))
assert not SIMULATOR or len(rows_first) == 2 and all("19 apart" in p for p in rows_first)

# %% [markdown]
# ## 5. Idle threads: 16×16 tiles on 7×7 maps
#
# The tiled kernel gives every (sample, channel) plane whole 16×16 tiles. At 224 px
# EfficientNet-B0's depthwise layers produce maps of 112, 56, 28, 14 and 7 pixels a side:
# a 112×112 map fills 7×7 tiles exactly, but a 7×7 map occupies 49 of a tile's 256 threads —
# the other 207 only help load the patch and then wait. Count it for every depthwise layer
# of B0 (`network_layers` lists each with its output size):

# %%
def tiled_threads_per_plane(h, w, tile=dcuda._TILE):
    return -(-h // tile) * -(-w // tile) * tile * tile


b0_dw = [p for p in network_layers(me.make_config("b0"), 224) if p.layer.kind == "depthwise_bn"]
by_side = {}
for p in b0_dw:
    side = p.out_size[0]
    busy, launched = by_side.get(side, (0, 0))
    by_side[side] = (busy + p.layer.out_channels * side * side,
                     launched + p.layer.out_channels * tiled_threads_per_plane(side, side))
print(f"{'output side':>11}{'layers':>8}{'busy threads':>14}")
for side, (busy, launched) in sorted(by_side.items(), reverse=True):
    n_layers = sum(p.out_size[0] == side for p in b0_dw)
    print(f"{side:>11}{n_layers:>8}{busy / launched:>14.0%}")
busy_all = sum(b for b, _ in by_side.values())
launched_all = sum(t for _, t in by_side.values())
print(f"all 16 depthwise layers of B0 (per image): {busy_all / launched_all:.0%} of the "
      f"launched threads have an output")
assert by_side[7][0] / by_side[7][1] == 49 / 256 and by_side[112][0] == by_side[112][1]

# %% [markdown]
# Two ways to fill the block on small maps, counted for the 7×7 layers (B0's last five
# depthwise layers, 1152 and 672 channels):
#
# * **smaller tiles**: 8×8 blocks of 64 threads hold a 7×7 map with 15 idle threads (77 %
#   busy) — but a 64-thread block is small for a GPU scheduler, and large maps then need 4×
#   more blocks, each loading its own halo;
# * **several planes per block**: 256 threads hold ⌊256 / 49⌋ = 5 planes of 7×7 (96 %
#   busy), one shared patch per plane — the same trick as the CPU kernel's channel tiles
#   for the late stages (lesson 03).
#
# Idle threads cost less than the percentages suggest when the kernel is memory-bound (they
# still help with the loads), but an SM holds a limited number of blocks, so 80 % idle
# threads are 80 % of those slots doing nothing.

# %%
tile8 = 49 / tiled_threads_per_plane(7, 7, tile=8)
packed = (256 // 49) * 49 / 256
print(f"7x7 maps: 16x16 tiles {49 / 256:.0%}, 8x8 tiles {tile8:.0%}, "
      f"{256 // 49} planes per 256-thread block {packed:.0%} busy")
assert abs(tile8 - 49 / 64) < 1e-12 and abs(packed - 245 / 256) < 1e-12

# %% [markdown]
# ## 6. Measured bandwidth (on a real GPU)
#
# The depthwise convolution does $k^2$ multiply-adds per value it reads: like on the CPU
# (lesson 11), it is memory-bound on a GPU, whose ridge point is even higher (tens of
# FLOP/byte). So the number that says how good a kernel is is its **bandwidth**: the
# compulsory bytes — read $x$ and $w$ once, write the output once — over the time, against
# the device's peak (about 3.3 TB/s for an H100 SXM, 4.8 TB/s for an H200, 1 TB/s for an
# RTX 4090).
#
# `gpu_seconds` times a launch the GPU way: launches are asynchronous, so synchronise
# before starting and before stopping the clock, and discard the first launch (it
# compiles). We launch the library's naive and tiled forward kernels directly, into a
# preallocated output, because the device entry point allocates a new output on every call
# and a `cudaMalloc` can take as long as the kernel. On a GPU this cell measures them on
# B0's layer shapes at batch 32 and 224 px, and section 1's kernel against the coalesced one
# on a 4096×4096 plane. In the simulator it runs the same code on tiny shapes, only to check
# that it runs (and computes the right numbers): the simulator's times measure Python
# threads, not memory.

# %%
def gpu_seconds(launch, repeat=20):
    """Seconds per call of launch(), measured after a warm-up call, synchronised."""
    launch()
    cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeat):
        launch()
    cuda.synchronize()
    return (time.perf_counter() - t0) / repeat


if SIMULATOR:
    layer_shapes = [("tiny", (1, 2, 6, 6), 3, 1)]
    plane_side, repeat = 20, 1
else:
    layer_shapes = [("blocks.1 dw 3x3 s2, 112 px", (32, 96, 112, 112), 3, 2),
                    ("blocks.2 dw 3x3 s1, 56 px", (32, 144, 56, 56), 3, 1),
                    ("blocks.3 dw 5x5 s2, 56 px", (32, 144, 56, 56), 5, 2),
                    ("blocks.13 dw 5x5 s1, 7 px", (32, 1152, 7, 7), 5, 1)]
    plane_side, repeat = 4096, 20

def forward_launches(x_d, w_d, out_d, stride):
    """{method: launch()} of the library's two forward kernels, symmetric padding, writing
    into the preallocated out_d (the device entry point would allocate it on every call)."""
    p = (w_d.shape[2] - 1) // 2
    grid, block = dcuda._tiles(*out_d.shape)
    naive_blocks = -(-out_d.size // dcuda._THREADS)
    return {"tiled": lambda: dcuda._forward_tiled_kernel[grid, block](x_d, w_d, out_d, stride, p, p),
            "naive": lambda: dcuda._forward_naive_kernel[naive_blocks, dcuda._THREADS](
                x_d, w_d, out_d, stride, p, p)}


bandwidths = {}
for name, shape, k, stride in layer_shapes:
    x_host = rng.standard_normal(shape).astype(np.float32)
    w_host = rng.standard_normal((shape[1], 1, k, k)).astype(np.float32)
    ref, _ = me.ops.depthwise_conv2d_forward(x_host[:1], w_host, stride)    # CPU, sample 0
    x_d, w_d = cuda.to_device(x_host), cuda.to_device(w_host)
    out_d = cuda.device_array((shape[0], shape[1]) + ref.shape[2:], dtype=np.float32)
    nbytes = 4 * (x_d.size + w_d.size + out_d.size)          # compulsory: read once, write once
    for method, launch in forward_launches(x_d, w_d, out_d, stride).items():
        t = gpu_seconds(launch, repeat)
        assert np.allclose(out_d[:1].copy_to_host(), ref, rtol=1e-4, atol=1e-4), (name, method)
        bandwidths[name, method] = nbytes / t
        if not SIMULATOR:
            print(f"{name:<28} {method:<6} {1e3 * t:8.3f} ms {nbytes / t / 1e9:8.0f} GB/s")

if not SIMULATOR:         # your kernels from sections 1 and 4 (the simulator skips them)
    P = plane_side
    xp_host = rng.standard_normal((P, P)).astype(np.float32)
    wp_host = rng.standard_normal((3, 3)).astype(np.float32)
    xp_d, wp_d = cuda.to_device(xp_host), cuda.to_device(wp_host)
    op_d = cuda.device_array((P, P), dtype=np.float32)
    grid16 = (-(-P // 16), -(-P // 16))
    for name, kernel in (("section 1 (x -> row)", conv_plane_kernel),
                         ("coalesced (x -> col)", conv_plane_coalesced)):
        t = gpu_seconds(lambda: kernel[grid16, (16, 16)](xp_d, wp_d, op_d), repeat)
        bandwidths[name] = 4 * 2 * P * P / t
        print(f"{name:<28} {P}x{P} plane {1e3 * t:8.3f} ms {bandwidths[name] / 1e9:8.0f} GB/s")
        corner = conv_plane_spec(xp_host[:9, :9], wp_host)[:8, :8]     # away from row/col 9
        assert np.allclose(op_d.copy_to_host()[:8, :8], corner, rtol=1e-4, atol=1e-4), name
else:
    print(f"simulator: the timing code ran ({len(bandwidths)} measurements); its times measure "
          f"Python threads, so no GB/s are shown. Run this lesson on a GPU for the real ones.")

# %% [markdown]
# What to expect on a GPU (measure, do not trust this paragraph): the coalesced plane
# kernel several times faster than section 1's; the library's kernels at a good fraction
# of the peak bandwidth on the large early maps, the tiled one ahead of the naive one where
# the k² re-reads miss the caches; and both far from it on the 7×7 maps, where most of each
# block idles (section 5) and the launch itself (a few microseconds) is a large part of the
# time.
#
# ## Exercises
#
# 1. **Count the idle threads.** For the tiled forward on `(N, C, H, W) = (2, 3, 20, 20)`,
#    3×3, stride 1, compute `tiled_threads` (all threads launched: blocks × 256) and
#    `tiled_idle` (threads whose output lies outside the image and only help load).
# 2. **The input gradient, one thread per input pixel.** Write `dx_plane_kernel(dout, w, dx)`
#    for one channel, stride 1, padding k // 2: thread `(i, j)` *gathers*
#    $dx_{ij} = \sum_{k_y,k_x} w_{k_y k_x}\, dout_{i + p - k_y,\; j + p - k_x}$ over the taps
#    whose output index is inside the image. (Gathering lets each thread write only its own
#    element: no atomic additions.) Map `threadIdx.x` to the column, so that it coalesces,
#    and guard the store. The check compares it with the CPU op's `dx` and holds it to rung
#    3's budget: at most $k^2$ reads of dout and of w and one write of dx per thread, and
#    neighbouring lanes on the same or the next element of dout and of dx.

# %%
# Exercise 1: threads launched and idle threads of the tiled forward on (2, 3, 20, 20)
Ne, Ce, He, We = 2, 3, 20, 20
### BEGIN SOLUTION
tiles_per_plane = ((He + 15) // 16) * ((We + 15) // 16)
tiled_threads = Ne * Ce * tiles_per_plane * 256
tiled_idle = tiled_threads - Ne * Ce * He * We
### END SOLUTION


# Exercise 2: dx of one channel, one thread per input pixel (x -> column), gather form
@cuda.jit
def dx_plane_kernel(dout, w, dx):
    ### BEGIN SOLUTION
    j, i = cuda.grid(2)
    H, W = dx.shape
    k = w.shape[0]
    p = k // 2
    if i < H and j < W:
        acc = dx.dtype.type(0)
        for ky in range(k):
            for kx in range(k):
                oy, ox = i + p - ky, j + p - kx
                if 0 <= oy < H and 0 <= ox < W:
                    acc += w[ky, kx] * dout[oy, ox]
        dx[i, j] = acc
    ### END SOLUTION


# %%
### CHECK: exercise 1, the idle threads of the tiled forward
assert tiled_threads is not ... and tiled_idle is not ..., "compute tiled_threads and tiled_idle"
grid_ex, block_ex = dcuda._tiles(Ne, Ce, He, We)
assert tiled_threads == grid_ex[0] * grid_ex[1] * block_ex[0] * block_ex[1] == 6 * 4 * 256
assert tiled_idle == 6 * (32 * 32 - 20 * 20)
print(f"{tiled_threads} threads, {tiled_idle} idle ({tiled_idle / tiled_threads:.0%})")

# %%
### CHECK: exercise 2, the dx kernel against the CPU op (a 5x7 plane, blocks of 4x4)
dout_plane = rng.standard_normal((5, 7))
dx_mine = np.zeros((5, 7))
dx_plane_kernel[(2, 2), (4, 4)](dout_plane, w_plane, dx_mine)
_, cache = me.ops.depthwise_conv2d_forward(rng.standard_normal((1, 1, 5, 7)), w_plane[None, None])
dx_ref, _ = me.ops.depthwise_conv2d_backward(dout_plane[None, None], cache)
print(me.compare("dx kernel vs CPU op", dx_mine, dx_ref[0, 0]))
assert np.allclose(dx_mine, dx_ref[0, 0], rtol=1e-12, atol=1e-12)
problems = over_budget(dx_plane_kernel, (2, 2), (4, 4), (dout_plane, w_plane, np.zeros((5, 7))),
                       {("dout", "read"): w_plane.size, ("w", "read"): w_plane.size,
                        ("dx", "write"): 1}, coalesced=("dout", "dx"))
assert problems == [], problems
print("all exercises pass")
