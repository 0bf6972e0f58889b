"""Optimisers, schedules and EMA: hand-computed steps, PyTorch cross-checks, exact resumption."""
import io
import math

import numpy as np
import pytest

from minieffnet.nn import Parameter
from minieffnet.optim import (EMA, SGD, AdamW, RMSProp, constant, exponential_staircase,
                              make_schedule, one_cycle, triangular, warmup_cosine)

# A tiny problem: a decayed weight, an exempt bias, and a parameter that gets a gradient only
# on even steps (so "grad is None" is exercised mid-run).
SHAPES = {"w": (3, 4), "b": (4,), "c": (2,)}
DECAY = {"w": True, "b": False, "c": True}
STEPS = 6
LRS = [0.1, 0.05, 0.08, 0.02, 0.07, 0.03]  # a changing lr, as a schedule would set it


def problem(rng, dtype):
    """Initial values and a gradient sequence (None where a parameter gets no gradient)."""
    init = {n: rng.standard_normal(s).astype(dtype) for n, s in SHAPES.items()}
    grads = [{n: None if (n == "c" and t % 2) else rng.standard_normal(s).astype(dtype)
              for n, s in SHAPES.items()} for t in range(STEPS)]
    return init, grads


def make_params(values):
    return [Parameter(v.copy(), decay=DECAY[n], name=n) for n, v in values.items()]


def run(opt, params, grads, steps):
    """Set lr and gradients, then step, for each step in ``steps``."""
    for t in steps:
        opt.lr = LRS[t]
        for p in params:
            p.grad = grads[t][p.name]
        opt.step()


FACTORIES = {
    "sgd": lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.05),
    "sgd_nesterov": lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.05),
    "sgd_plain": lambda ps: SGD(ps, lr=0.1, momentum=0.0, weight_decay=0.05),
    "rmsprop": lambda ps: RMSProp(ps, lr=0.1, weight_decay=0.05),
    "adamw": lambda ps: AdamW(ps, lr=0.1, weight_decay=0.05),
}


# --- hand-computed single steps ------------------------------------------------------------

def test_sgd_hand_computed():
    p = Parameter(np.array([1.0, -2.0]))
    opt = SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    p.grad = np.array([0.5, 0.25])
    opt.step()  # d = g + 0.01 p = [0.51, 0.23]; buf = d; p -= 0.1 buf
    np.testing.assert_allclose(p.data, [0.949, -2.023], rtol=1e-14)
    opt.step()  # d = [0.50949, 0.22977]; buf = 0.9 [0.51, 0.23] + d = [0.96849, 0.43677]
    np.testing.assert_allclose(p.data, [0.852151, -2.066677], rtol=1e-14)


def test_sgd_nesterov_hand_computed():
    p = Parameter(np.array([1.0, -2.0]))
    opt = SGD([p], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    p.grad = np.array([0.5, 0.25])
    opt.step()  # d = [0.51, 0.23] = buf; step = d + 0.9 buf = [0.969, 0.437]
    np.testing.assert_allclose(p.data, [0.9031, -2.0437], rtol=1e-14)


def test_rmsprop_hand_computed():
    p = Parameter(np.array([1.0, 3.0]))
    opt = RMSProp([p], lr=0.1, decay=0.9, momentum=0.9, eps=1e-3, weight_decay=0.1)
    p.grad = np.array([0.5, -0.3])
    opt.step()
    # g = grad + 0.1 p = [0.6, 0.0]; ms = 0.9 * 1 + 0.1 g^2 = [0.936, 0.9] (starts at ONES);
    # mom = 0.1 g / sqrt(ms + 1e-3) (eps inside the root).
    mom1 = np.array([0.06 / math.sqrt(0.937), 0.0])
    np.testing.assert_allclose(p.data, [1.0, 3.0] - mom1, rtol=1e-14)
    np.testing.assert_allclose(opt.state["square_avg"][0], [0.936, 0.9], rtol=1e-14)
    p.grad = np.array([0.0, 0.0])
    opt.step()
    # g = 0.1 p; ms = 0.9 ms + 0.1 g^2; mom = 0.9 mom1 + 0.1 g / sqrt(ms + 1e-3)
    g2 = 0.1 * (np.array([1.0, 3.0]) - mom1)
    ms2 = np.array([0.9 * 0.936, 0.81]) + 0.1 * g2 ** 2
    mom2 = 0.9 * mom1 + 0.1 * g2 / np.sqrt(ms2 + 1e-3)
    np.testing.assert_allclose(p.data, [1.0, 3.0] - mom1 - mom2, rtol=1e-14)


def test_adamw_hand_computed():
    p = Parameter(np.array([1.0, -2.0]))
    opt = AdamW([p], lr=0.1, weight_decay=0.01)
    p.grad = np.array([0.5, -0.25])
    opt.step()
    # p *= 1 - 0.1 * 0.01; m_hat = g, v_hat = g^2, so the step is 0.1 * g / (|g| + 1e-8).
    expected = [0.999 - 0.1 * 0.5 / (0.5 + 1e-8), -1.998 + 0.1 * 0.25 / (0.25 + 1e-8)]
    np.testing.assert_allclose(p.data, expected, rtol=1e-14)
    assert int(opt.state["step"][0]) == 1


# --- cross-checks ----------------------------------------------------------------------------

TORCH_CASES = {
    "sgd": ("SGD", dict(momentum=0.9)),
    "sgd_nesterov": ("SGD", dict(momentum=0.9, nesterov=True)),
    "sgd_plain": ("SGD", dict(momentum=0.0)),
    "adamw": ("AdamW", {}),
}


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(TORCH_CASES))
def test_matches_torch(name, dtype, rng):
    torch = pytest.importorskip("torch")
    init, grads = problem(rng, dtype)
    params = make_params(init)
    run(FACTORIES[name](params), params, grads, range(STEPS))

    tensors = {n: torch.tensor(v.copy(), requires_grad=True) for n, v in init.items()}
    groups = [{"params": [t for n, t in tensors.items() if DECAY[n] == d],
               "weight_decay": 0.05 if d else 0.0} for d in (True, False)]
    cls, kw = TORCH_CASES[name]
    topt = getattr(torch.optim, cls)(groups, lr=0.1, foreach=False, **kw)
    for t in range(STEPS):
        for group in topt.param_groups:
            group["lr"] = LRS[t]
        for n, tensor in tensors.items():
            tensor.grad = None if grads[t][n] is None else torch.from_numpy(grads[t][n].copy())
        topt.step()

    rtol = 1e-13 if dtype == np.float64 else 1e-5
    for p in params:
        assert p.data.dtype == dtype
        np.testing.assert_allclose(p.data, tensors[p.name].detach().numpy(), rtol=rtol,
                                   atol=rtol * 1e-2, err_msg=p.name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rmsprop_matches_tf_formula(dtype, rng):
    init, grads = problem(rng, dtype)
    params = make_params(init)
    run(FACTORIES["rmsprop"](params), params, grads, range(STEPS))
    # TF1 ApplyRMSProp written out plainly: ms from ones, eps inside the root, lr into momentum.
    for name, value in init.items():
        p, ms, mom = value.astype(np.float64), np.ones(value.shape), np.zeros(value.shape)
        for t in range(STEPS):
            if grads[t][name] is None:
                continue
            g = grads[t][name] + (0.05 * p if DECAY[name] else 0.0)
            ms = 0.9 * ms + 0.1 * g * g
            mom = 0.9 * mom + LRS[t] * g / np.sqrt(ms + 1e-3)
            p = p - mom
        ours = next(q.data for q in params if q.name == name)
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, p, rtol=1e-13 if dtype == np.float64 else 1e-5,
                                   err_msg=name)


# --- behaviour shared by every optimiser -----------------------------------------------------

@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_weight_decay_only_on_decay_params(name):
    exempt = Parameter(np.array([1.0, -2.0], np.float32), decay=False, name="bn.weight")
    decayed = Parameter(np.array([1.0, -2.0], np.float32), decay=True, name="conv.weight")
    opt = FACTORIES[name]([exempt, decayed])
    before = exempt.data.tobytes()
    for _ in range(3):
        exempt.grad = np.zeros(2, np.float32)
        decayed.grad = np.zeros(2, np.float32)
        opt.step()
    assert exempt.data.tobytes() == before
    assert np.all(np.abs(decayed.data) < [1.0, 2.0])  # decay alone shrinks it towards zero


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_grad_none_is_skipped_and_update_is_in_place(name, rng):
    a = Parameter(rng.standard_normal(3).astype(np.float32), name="a")
    b = Parameter(rng.standard_normal(3).astype(np.float32), name="b")
    opt = FACTORIES[name]([a, b])
    data_a, state_before = a.data, opt.state_dict()
    a.grad, b.grad = rng.standard_normal(3).astype(np.float32), None
    opt.step()
    assert a.data is data_a and a.data.dtype == np.float32
    state_after = opt.state_dict()
    for key in state_before:
        if key.endswith(".b"):
            assert np.asarray(state_after[key]).tobytes() == np.asarray(state_before[key]).tobytes()
    opt.zero_grad()
    assert a.grad is None


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_state_dict_round_trip_is_bit_exact(name, rng):
    init, grads = problem(rng, np.float32)
    params = make_params(init)
    opt = FACTORIES[name](params)
    run(opt, params, grads, range(3))
    checkpoint = io.BytesIO()
    np.savez(checkpoint, **opt.state_dict())
    at_save = {p.name: p.data.copy() for p in params}
    run(opt, params, grads, range(3, STEPS))

    fresh = make_params(at_save)
    resumed = FACTORIES[name](fresh)
    checkpoint.seek(0)
    resumed.load_state_dict(np.load(checkpoint, allow_pickle=False))
    assert resumed.lr == LRS[2]
    run(resumed, fresh, grads, range(3, STEPS))
    for p, q in zip(params, fresh):
        assert p.data.tobytes() == q.data.tobytes(), p.name
    for key, value in opt.state_dict().items():
        assert np.asarray(value).tobytes() == np.asarray(resumed.state_dict()[key]).tobytes()


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_wrong_state_raises_naming_the_key(name, rng):
    params = make_params(problem(rng, np.float32)[0])
    opt = FACTORIES[name](params)
    good = opt.state_dict()
    key = next(k for k in good if k.endswith(".w"))
    with pytest.raises(ValueError, match=key):
        opt.load_state_dict({k: v for k, v in good.items() if k != key})
    with pytest.raises(ValueError, match="bogus"):
        opt.load_state_dict({**good, "bogus": np.zeros(1)})
    bad = {**good, "lr": 0.5, key: np.zeros(np.asarray(good[key]).shape + (1,))}
    with pytest.raises(ValueError, match=key):
        opt.load_state_dict(bad)
    assert opt.lr == good["lr"]  # nothing was loaded


def test_keys_fall_back_to_indices_for_unnamed_params():
    opt = SGD([Parameter(np.zeros(2)), Parameter(np.zeros(3))], lr=0.1)
    assert sorted(opt.state_dict()) == ["lr", "momentum_buffer.0", "momentum_buffer.1"]


# --- schedules -------------------------------------------------------------------------------

def test_warmup_cosine_key_steps():
    lr = lambda s: warmup_cosine(s, total_steps=110, base_lr=0.1, warmup_steps=10, final_lr=0.001)
    assert lr(0) == 0.0 and lr(5) == pytest.approx(0.05, rel=1e-15)
    assert lr(10) == 0.1  # warm-up end
    assert lr(60) == pytest.approx((0.1 + 0.001) / 2, rel=1e-15)  # cosine midpoint
    assert lr(110) == pytest.approx(0.001, rel=1e-15) and lr(500) == lr(110)
    values = [lr(s) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_exponential_staircase_boundaries():
    lr = lambda s, **kw: exponential_staircase(s, steps_per_epoch=10, base_lr=0.256, **kw)
    # every 2.4 epochs = 24 steps
    assert lr(0) == lr(23) == 0.256
    assert lr(24) == lr(47) == pytest.approx(0.256 * 0.97, rel=1e-15)
    assert lr(48) == pytest.approx(0.256 * 0.97 ** 2, rel=1e-15)
    # a non-integer boundary: 391 steps/epoch * 2.4 = 938.4
    assert exponential_staircase(938, 391, 0.256) == 0.256
    assert exponential_staircase(939, 391, 0.256) == pytest.approx(0.256 * 0.97, rel=1e-15)
    # warm-up overrides the start; the staircase counts from step 0 regardless
    assert lr(25, warmup_steps=50) == pytest.approx(0.128, rel=1e-15)
    assert lr(50, warmup_steps=50) == pytest.approx(0.256 * 0.97 ** 2, rel=1e-15)


def test_constant():
    assert constant(0, 0.1, warmup_steps=4) == 0.0
    assert constant(2, 0.1, warmup_steps=4) == pytest.approx(0.05)
    assert constant(4, 0.1, warmup_steps=4) == constant(10 ** 6, 0.1) == 0.1


def test_one_cycle_key_steps():
    lr = lambda s: one_cycle(s, total_steps=100, base_lr=0.05)
    assert lr(0) == pytest.approx(0.05 / 25, rel=1e-15)
    assert lr(29) == pytest.approx(0.05, rel=1e-15)  # peak at pct_start * total - 1
    assert lr(99) == pytest.approx(0.05 / 25 / 1e4, rel=1e-12) and lr(150) == lr(99)


@pytest.mark.torch
def test_one_cycle_matches_torch():
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=97, pct_start=0.25)
    for step in range(97):
        assert one_cycle(step, 97, 0.05, pct_start=0.25) == pytest.approx(
            opt.param_groups[0]["lr"], rel=1e-13, abs=1e-18), step
        opt.step()
        sched.step()


def test_triangular_key_steps():
    """Linear from 0.2 of the peak up to the peak at 25 of 100 steps, linear down to 0 at 100."""
    lr = lambda s, **kw: triangular(s, total_steps=100, base_lr=0.4, pct_start=0.25, **kw)
    assert lr(0) == pytest.approx(0.08, rel=1e-15)
    assert lr(12.5) == pytest.approx(0.24, rel=1e-15)  # half-way up
    assert lr(25) == pytest.approx(0.4, rel=1e-15)
    assert lr(50) == pytest.approx(0.4 * 2 / 3, rel=1e-15)
    assert lr(99) == pytest.approx(0.4 / 75, rel=1e-12) and lr(100) == lr(150) == 0
    assert lr(100, final_fraction=0.07) == pytest.approx(0.028, rel=1e-15)
    assert lr(0, start_fraction=0.0) == 0
    values = [lr(s) for s in range(101)]
    assert all(a < b for a, b in zip(values[:25], values[1:26]))
    assert all(a > b for a, b in zip(values[25:], values[26:]))
    assert make_schedule("triangular", base_lr=0.4, total_steps=100, pct_start=0.25)(50) == lr(50)


def test_make_schedule():
    schedule = make_schedule("warmup_cosine", base_lr=0.1, total_steps=100, warmup_steps=5)
    assert [schedule(s) for s in (0, 3, 50)] == [warmup_cosine(s, 100, 0.1, 5) for s in (0, 3, 50)]
    assert make_schedule("constant", base_lr=0.2)(7) == 0.2
    with pytest.raises(ValueError, match="unknown schedule"):
        make_schedule("linear", base_lr=0.1)
    with pytest.raises(TypeError):
        make_schedule("one_cycle", base_lr=0.1)  # total_steps missing
    with pytest.raises(TypeError):
        make_schedule("constant", base_lr=0.1, total_steps=10)  # unexpected


# --- EMA -------------------------------------------------------------------------------------

def test_ema_arithmetic():
    p = Parameter(np.array([1.0, -1.0]), name="w")
    ema = EMA([p], decay=0.9)
    p.data[...] = [2.0, 0.0]
    ema.update()  # 0.9 [1, -1] + 0.1 [2, 0]
    np.testing.assert_allclose(ema.shadow["w"], [1.1, -0.9], rtol=1e-15)
    p.data[...] = [3.0, 1.0]
    ema.update()  # 0.9 [1.1, -0.9] + 0.1 [3, 1]
    np.testing.assert_allclose(ema.shadow["w"], [1.29, -0.71], rtol=1e-14)


def test_ema_warmup_decay():
    p = Parameter(np.array([1.0]), name="w")
    ema = EMA([p], decay=0.5, warmup=True)
    p.data[...] = 2.0
    ema.update()  # t = 1: decay min(0.5, 2/11)
    np.testing.assert_allclose(ema.shadow["w"], [2 / 11 * 1 + 9 / 11 * 2], rtol=1e-15)
    decays = []
    for _ in range(9):
        decays.append(ema.current_decay())
        ema.update()
    assert decays[0] == 3 / 12 and decays[6] == 9 / 18 == 0.5 and decays[8] == 0.5


def test_ema_buffers_and_applied_restores():
    p = Parameter(np.array([1.0, 2.0], np.float32), name="w")
    running_mean = np.array([0.0, 0.0], np.float32)
    ema = EMA([p], decay=0.5, buffers={"bn.running_mean": running_mean})
    p.data[...] = [3.0, 4.0]
    running_mean[...] = [2.0, 4.0]
    ema.update()
    data = p.data
    with ema.applied():
        assert p.data is data  # swapped in place: layers holding the array see the averages
        np.testing.assert_array_equal(p.data, [2.0, 3.0])
        np.testing.assert_array_equal(running_mean, [1.0, 2.0])
    np.testing.assert_array_equal(p.data, [3.0, 4.0])
    np.testing.assert_array_equal(running_mean, [2.0, 4.0])
    with pytest.raises(RuntimeError), ema.applied():
        raise RuntimeError("evaluation failed")
    np.testing.assert_array_equal(p.data, [3.0, 4.0])
    np.testing.assert_array_equal(ema.shadow["w"], [2.0, 3.0])
    with pytest.raises(ValueError, match="collides"):
        EMA([p], buffers={"w": running_mean})


def test_ema_state_round_trip(rng):
    p = Parameter(rng.standard_normal(4), name="w")
    updates = [rng.standard_normal(4) for _ in range(6)]
    ema = EMA([p], decay=0.99, warmup=True)
    for u in updates[:3]:
        p.data[...] = u
        ema.update()
    checkpoint = io.BytesIO()
    np.savez(checkpoint, **ema.state_dict())
    for u in updates[3:]:
        p.data[...] = u
        ema.update()
    resumed = EMA([p], decay=0.99, warmup=True)
    checkpoint.seek(0)
    resumed.load_state_dict(np.load(checkpoint, allow_pickle=False))
    assert int(resumed.num_updates) == 3
    for u in updates[3:]:
        p.data[...] = u
        resumed.update()
    assert resumed.shadow["w"].tobytes() == ema.shadow["w"].tobytes()
    with pytest.raises(ValueError, match="shadow.w"):
        resumed.load_state_dict({"num_updates": 1, "shadow.w": np.zeros(5)})


def test_one_cycle_with_its_peak_at_step_zero_is_finite():
    from minieffnet.optim.schedules import one_cycle
    lrs = [one_cycle(s, total_steps=4, base_lr=0.1, pct_start=0.25) for s in range(4)]
    assert lrs[0] == 0.1 and all(np.isfinite(lrs)) and lrs[-1] < lrs[1] < lrs[0]
