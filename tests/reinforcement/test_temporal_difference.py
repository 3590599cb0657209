"""Tests of book/reinforcement/temporal_difference.md: td_loss and td_lambda_returns."""

import io
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import lossbook
import lossbook.nn
from lossbook import td_loss
from lossbook.reinforcement.temporal_difference import td_lambda_returns

REDUCTIONS = ["none", "mean", "sum"]
SHAPES = [(1,), (7,), (5, 3), (2, 3, 4)]


def transitions(shape, dtype=torch.float64, device="cpu", seed=0, p_done=0.3, p_truncated=0.5):
    """value, next_value, reward, done (0/1 floats) and truncated (a subset of done)."""
    g = torch.Generator().manual_seed(seed)
    value, next_value, reward = (2 * torch.randn(shape, dtype=torch.float64, generator=g) for _ in range(3))
    done = (torch.rand(shape, generator=g) < p_done).double()
    truncated = done * (torch.rand(shape, generator=g) < p_truncated).double()
    return tuple(t.to(device=device, dtype=dtype) for t in (value, next_value, reward, done, truncated))


def td_numpy(value, next_value, reward, done, gamma, kind, truncated=None, reduction="mean"):
    """The closed form in float64 NumPy: (5) with the factor (8), then the reduction."""
    value, next_value, reward, done = (np.asarray(t, np.float64) for t in (value, next_value, reward, done))
    cut = np.zeros_like(done) if truncated is None else np.asarray(truncated, np.float64)
    target = reward + gamma * np.where((done == 1) & (cut == 0), 0.0, 1.0) * next_value
    r = value - target
    loss = r**2 if kind == "mse" else np.where(np.abs(r) < 1, 0.5 * r**2, np.abs(r) - 0.5)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.mean() if loss.size else 0.0


def lambda_returns_numpy(values, next_values, rewards, dones, gamma, lam, truncated=None):
    """A plain loop over equation (9) of the chapter, G^lambda_t, with ends of episodes:
    at an end G = R + gamma b V', inside G = R + gamma [(1 - lam) V' + lam G_{t+1}],
    after the rollout G_T = V(S_T). Returns (G, G - V)."""
    values, next_values, rewards, dones = (np.asarray(t, np.float64) for t in (values, next_values, rewards, dones))
    cut = np.zeros_like(dones) if truncated is None else np.asarray(truncated, np.float64)
    returns = np.zeros_like(values)
    T = values.shape[0]
    for index in np.ndindex(values.shape[1:]):
        following = None
        for t in reversed(range(T)):
            i = (t, *index)
            v_next = next_values[i]
            if dones[i]:
                g = rewards[i] + (gamma * v_next if cut[i] else 0.0)
            elif following is None:  # the last step of the rollout: bootstrap fully
                g = rewards[i] + gamma * v_next
            else:
                g = rewards[i] + gamma * ((1 - lam) * v_next + lam * following)
            returns[i] = g
            following = g
    return returns, returns - values


def rollout(T, batch=(), seed=0, dtype=torch.float64, p_done=0.15):
    """A consistent time-major rollout: next_values[t] = values[t + 1] inside episodes, the
    final observation's value where an episode ends, a last value after the rollout."""
    g = torch.Generator().manual_seed(seed)
    shape = (T, *batch)
    values = torch.randn(shape, dtype=torch.float64, generator=g)
    rewards = torch.randn(shape, dtype=torch.float64, generator=g)
    dones = (torch.rand(shape, generator=g) < p_done).double()
    truncated = dones * (torch.rand(shape, generator=g) < 0.5).double()
    final = torch.randn(shape, dtype=torch.float64, generator=g)
    last = torch.randn(batch, dtype=torch.float64, generator=g)
    next_values = torch.cat([values[1:], last[None]]) if T else values.clone()
    next_values = torch.where(dones.bool(), final, next_values)
    return tuple(t.to(dtype) for t in (values, next_values, rewards, dones, truncated))


# --- td_loss: oracles ----------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", ["mse", "huber"])
@pytest.mark.parametrize("with_truncation", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_td_loss_is_the_closed_form(shape, kind, with_truncation, reduction, device):
    value, next_value, reward, done, truncated = transitions(shape, device=device, seed=1)
    cut = truncated if with_truncation else None
    for gamma in [0.0, 0.5, 0.99, 1.0]:
        ours = td_loss(value, next_value, reward, done, gamma=gamma, kind=kind, truncated=cut, reduction=reduction)
        expected = td_numpy(value.cpu(), next_value.cpu(), reward.cpu(), done.cpu(), gamma, kind,
                            None if cut is None else cut.cpu(), reduction)
        np.testing.assert_allclose(ours.cpu().numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind, peer", [("mse", F.mse_loss), ("huber", F.smooth_l1_loss)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_td_loss_is_the_torch_loss_on_the_detached_target(kind, peer, reduction):
    value, next_value, reward, done, truncated = transitions((50, 4), seed=2)
    target = reward + 0.9 * (1 - done * (1 - truncated)) * next_value
    a, b = value.clone().requires_grad_(), value.clone().requires_grad_()
    ours = td_loss(a, next_value, reward, done, gamma=0.9, kind=kind, truncated=truncated, reduction=reduction)
    theirs = peer(b, target, reduction=reduction)
    torch.testing.assert_close(ours, theirs, rtol=1e-14, atol=1e-14)
    ours.sum().backward()
    theirs.sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("kind", ["mse", "huber"])
def test_the_target_is_detached(kind):
    value, next_value, reward, done, truncated = transitions((30,), seed=3)
    value, next_value, reward = (t.clone().requires_grad_() for t in (value, next_value, reward))
    loss = td_loss(value, next_value, reward, done, gamma=0.9, kind=kind, truncated=truncated)
    loss.backward()
    assert next_value.grad is None and reward.grad is None  # nothing flows into the target
    delta = (reward + 0.9 * (1 - done * (1 - truncated)) * next_value - value).detach()
    expected = -2 * delta / 30 if kind == "mse" else -delta.clamp(-1, 1) / 30  # (6); DQN's clipped error
    torch.testing.assert_close(value.grad, expected, rtol=1e-13, atol=1e-15)
    # the same with next_value computed from the value itself (one network for both)
    table = torch.randn(6, dtype=torch.float64, requires_grad=True)
    states, following = torch.tensor([0, 1, 2, 3]), torch.tensor([1, 2, 3, 4])
    loss = td_loss(table[states], table[following], torch.ones(4, dtype=torch.float64), torch.zeros(4), kind=kind,
                   reduction="sum")
    (grad,) = torch.autograd.grad(loss, table)
    target = 1 + 0.99 * table.detach()[following]
    by_hand = torch.zeros(6, dtype=torch.float64)
    residual = table.detach()[states] - target
    by_hand[states] = 2 * residual if kind == "mse" else residual.clamp(-1, 1)
    torch.testing.assert_close(grad, by_hand)


def test_gradcheck_with_respect_to_the_value():
    value, next_value, reward, done, truncated = transitions((4, 2), seed=4)
    for kind in ["mse", "huber"]:
        for reduction in REDUCTIONS:
            fn = lambda v: td_loss(v, next_value, reward, done, gamma=0.8, kind=kind, truncated=truncated,  # noqa: E731
                                   reduction=reduction)
            assert torch.autograd.gradcheck(fn, (value.clone().requires_grad_(),))
            assert torch.autograd.gradgradcheck(fn, (value.clone().requires_grad_(),))


def test_one_sgd_step_on_a_table_is_tabular_td0():
    """Equation (6): SGD with rate alpha / 2 on the summed loss is V(S) += alpha * delta."""
    table = torch.tensor([0.0, 0.2, 0.5, 0.7, 0.0], dtype=torch.float64, requires_grad=True)
    states, following = torch.tensor([1, 2, 3]), torch.tensor([2, 3, 4])
    reward, done = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), torch.tensor([0.0, 0.0, 1.0])
    alpha, gamma = 0.1, 0.9
    (grad,) = torch.autograd.grad(td_loss(table[states], table[following], reward, done, gamma=gamma, reduction="sum"), table)
    v = table.detach()
    expected = v.clone()
    expected[states] += alpha * (reward + gamma * (1 - done) * v[following] - v[states])
    torch.testing.assert_close(v - alpha / 2 * grad, expected)


# --- td_loss: termination and truncation --------------------------------------------------------


def test_truncation_bootstraps_and_termination_does_not():
    value = torch.tensor([1.0, 1.0, 1.0, 1.0])
    next_value = torch.tensor([4.0, 4.0, 4.0, 4.0])
    reward = torch.tensor([1.0, 1.0, 1.0, 1.0])
    done = torch.tensor([0.0, 1.0, 1.0, 0.0])
    truncated = torch.tensor([0.0, 0.0, 1.0, 0.0])
    loss = td_loss(value, next_value, reward, done, gamma=0.5, truncated=truncated, reduction="none")
    # targets: going on 3, terminated 1, truncated 3 (bootstrapped), going on 3
    torch.testing.assert_close(loss, torch.tensor([4.0, 0.0, 4.0, 4.0]))
    without = td_loss(value, next_value, reward, done, gamma=0.5, reduction="none")
    torch.testing.assert_close(without, torch.tensor([4.0, 0.0, 0.0, 4.0]))  # the time limit taken as terminal


def test_the_two_conventions_agree():
    """gymnasium's done=terminated equals done=terminated|truncated with truncated=truncated&~terminated."""
    g = torch.Generator().manual_seed(5)
    value, next_value, reward = (torch.randn(40, generator=g) for _ in range(3))
    terminated = torch.rand(40, generator=g) < 0.2
    truncated = torch.rand(40, generator=g) < 0.2  # sometimes both, as gymnasium allows
    gymnasium = td_loss(value, next_value, reward, terminated, reduction="none")
    sb3 = td_loss(value, next_value, reward, terminated | truncated, truncated=truncated & ~terminated, reduction="none")
    torch.testing.assert_close(gymnasium, sb3)
    zeros = td_loss(value, next_value, reward, terminated, truncated=torch.zeros(40), reduction="none")
    torch.testing.assert_close(zeros, gymnasium)  # no truncation: the same as without the argument


@pytest.mark.parametrize("flag_dtype", [torch.bool, torch.uint8, torch.int32, torch.int64, torch.float16, torch.float64])
def test_flags_of_any_dtype(flag_dtype):
    value, next_value, reward, done, truncated = transitions((20,), seed=6)
    expected = td_loss(value, next_value, reward, done, truncated=truncated, reduction="none")
    ours = td_loss(value, next_value, reward, done.to(flag_dtype), truncated=truncated.to(flag_dtype), reduction="none")
    torch.testing.assert_close(ours, expected)


# --- td_loss: properties --------------------------------------------------------------------------

floats = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@given(st.lists(st.tuples(floats, floats, floats, st.booleans()), min_size=1, max_size=20),
       st.floats(0, 1), st.sampled_from(["mse", "huber"]))
def test_properties(rows, gamma, kind):
    value, next_value, reward = (torch.tensor([row[i] for row in rows], dtype=torch.float64) for i in range(3))
    done = torch.tensor([row[3] for row in rows])
    loss = td_loss(value, next_value, reward, done, gamma=gamma, kind=kind, reduction="none")
    assert (loss >= 0).all()
    target = reward + gamma * (~done).double() * next_value
    assert torch.all(td_loss(target, next_value, reward, done, gamma=gamma, kind=kind, reduction="none") == 0)
    # gamma = 0: regression on the reward alone, whatever follows
    torch.testing.assert_close(td_loss(value, next_value, reward, done, gamma=0.0, kind=kind, reduction="none"),
                               td_loss(value, torch.zeros_like(value), reward, torch.ones_like(done), kind=kind,
                                       reduction="none"))
    # Huber is at most the square's half, and equal to it for small errors
    half = td_loss(value, next_value, reward, done, gamma=gamma, reduction="none") / 2
    huber = td_loss(value, next_value, reward, done, gamma=gamma, kind="huber", reduction="none")
    assert torch.all(huber <= half + 1e-9)
    small = (value - target).abs() < 1
    torch.testing.assert_close(huber[small], half[small])


def test_half_precision_with_truncation():
    value, next_value, reward, done, truncated = transitions((16,), dtype=torch.float32, seed=7)
    value, next_value, reward = (1e4 * t for t in (value, next_value, reward))
    for dtype in [torch.float16, torch.bfloat16]:
        low = [t.to(dtype) for t in (value, next_value, reward, done, truncated)]
        low[0].requires_grad_()
        loss = td_loss(*low[:4], truncated=low[4], kind="mse")
        assert loss.dtype == torch.float32 and torch.isfinite(loss)
        single = [t.float() for t in low]
        torch.testing.assert_close(loss, td_loss(*single[:4], truncated=single[4]))
        loss.backward()
        assert low[0].grad.dtype == dtype and torch.isfinite(low[0].grad).all()


def test_truncated_under_compile_and_vmap():
    value, next_value, reward, done, truncated = transitions((4, 6), seed=8)
    fn = lambda v, nv, r, d, t: td_loss(v, nv, r, d, gamma=0.9, kind="huber", truncated=t)  # noqa: E731
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(value, next_value, reward, done, truncated),
                               fn(value, next_value, reward, done, truncated))
    batched = torch.func.vmap(fn)(value, next_value, reward, done, truncated)
    torch.testing.assert_close(batched, torch.stack([fn(*row) for row in zip(value, next_value, reward, done, truncated)]))
    per_sample = torch.func.vmap(torch.func.grad(fn))(value, next_value, reward, done, truncated)
    for i in range(4):
        v = value[i].clone().requires_grad_()
        (expected,) = torch.autograd.grad(fn(v, next_value[i], reward[i], done[i], truncated[i]), v)
        torch.testing.assert_close(per_sample[i], expected)


def test_module():
    value, next_value, reward, done, _ = transitions((10,), seed=9)
    module = lossbook.nn.TDLoss(gamma=0.5, kind="huber")
    torch.testing.assert_close(module(value, next_value, reward, done),
                               td_loss(value, next_value, reward, done, gamma=0.5, kind="huber"))
    module.gamma = 0.0  # options are attributes read at call time
    torch.testing.assert_close(module(value, next_value, reward, done),
                               td_loss(value, next_value, reward, done, gamma=0.0, kind="huber"))
    assert "gamma=0.0" in repr(module) and "kind='huber'" in repr(module)
    restored = pickle.loads(pickle.dumps(module))
    torch.testing.assert_close(restored(value, next_value, reward, done), module(value, next_value, reward, done))
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\], got 2.0"):
        lossbook.nn.TDLoss(gamma=2.0)
    with pytest.raises(ValueError, match="kind must be 'mse' or 'huber'"):
        lossbook.nn.TDLoss(kind="smooth_l1")


# --- td_loss: refusals ------------------------------------------------------------------------------


def test_refusals():
    value, next_value, reward, done, truncated = transitions((5,), seed=10)
    with pytest.raises(ValueError, match=r"value and reward must have the same shape, got \(5,\) and \(5, 1\)"):
        td_loss(value, next_value, reward[:, None], done)
    with pytest.raises(ValueError, match=r"value and done must have the same shape"):
        td_loss(value, next_value, reward, done[:4])
    with pytest.raises(ValueError, match=r"value and truncated must have the same shape"):
        td_loss(value, next_value, reward, done, truncated=truncated[None])
    with pytest.raises(TypeError, match="reward must be a floating-point tensor, got dtype torch.int64"):
        td_loss(value, next_value, reward.long(), done)
    with pytest.raises(TypeError, match="next_value must be a floating-point tensor"):
        td_loss(value, next_value.int(), reward, done)
    with pytest.raises(TypeError, match="done must be a torch.Tensor, got list"):
        td_loss(value, next_value, reward, done.tolist())
    with pytest.raises(TypeError, match="truncated must hold 0 or 1"):
        td_loss(value, next_value, reward, done, truncated=truncated.to(torch.complex64))
    with pytest.raises(ValueError, match="done must hold 0 or 1, got 2.0"):
        td_loss(value, next_value, reward, 2 * done + (done == 0))
    with pytest.raises(ValueError, match="done must hold 0 or 1, got nan"):
        td_loss(value, next_value, reward, torch.full((5,), float("nan")))
    with pytest.raises(ValueError, match="done must hold 0 or 1, got 3"):
        td_loss(value, next_value, reward, torch.tensor([0, 1, 3, 0, 1], dtype=torch.uint8))
    with pytest.raises(ValueError, match="truncated is 1 where done is 0"):
        td_loss(value, next_value, reward, torch.zeros(5), truncated=torch.ones(5))
    with lossbook.validate_args(False):  # value checks can be switched off
        td_loss(value, next_value, reward, torch.zeros(5), truncated=torch.ones(5))


# --- td_lambda_returns -------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [(), (4,), (3, 2)])
@pytest.mark.parametrize("lam", [0.0, 0.3, 0.95, 1.0])
@pytest.mark.parametrize("with_truncation", [False, True])
def test_lambda_returns_against_a_numpy_loop(batch, lam, with_truncation):
    values, next_values, rewards, dones, truncated = rollout(40, batch, seed=11)
    cut = truncated if with_truncation else None
    for gamma in [0.0, 0.9, 1.0]:
        returns, advantages = td_lambda_returns(values, next_values, rewards, dones, gamma=gamma, lam=lam, truncated=cut)
        expected_returns, expected_advantages = lambda_returns_numpy(values, next_values, rewards, dones, gamma, lam,
                                                                     None if cut is None else cut)
        np.testing.assert_allclose(returns.numpy(), expected_returns, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(advantages.numpy(), expected_advantages, rtol=1e-12, atol=1e-12)


def test_lambda_returns_against_stable_baselines3s_loop():
    """SB3's RolloutBuffer: episode starts, last values, and gamma V(final obs) added to the reward at a time limit."""
    values, next_values, rewards, dones, truncated = rollout(50, (6,), seed=12)
    gamma, lam = 0.97, 0.9
    sb3_rewards = (rewards + gamma * truncated * next_values).numpy()
    starts = torch.cat([torch.zeros(1, 6, dtype=torch.float64), dones[:-1]]).numpy()
    v = values.numpy()
    advantages, last = np.zeros_like(v), 0.0
    for step in reversed(range(50)):
        if step == 49:
            non_terminal, following = 1.0 - dones[-1].numpy(), next_values[-1].numpy()
        else:
            non_terminal, following = 1.0 - starts[step + 1], v[step + 1]
        delta = sb3_rewards[step] + gamma * following * non_terminal - v[step]
        last = delta + gamma * lam * non_terminal * last
        advantages[step] = last
    returns, ours = td_lambda_returns(values, next_values, rewards, dones, gamma=gamma, lam=lam, truncated=truncated)
    np.testing.assert_allclose(ours.numpy(), advantages, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(returns.numpy(), advantages + v, rtol=1e-12, atol=1e-12)


def test_lambda_zero_and_one():
    values, next_values, rewards, dones, truncated = rollout(30, (5,), seed=13)
    bootstrap = 1 - dones * (1 - truncated)
    zero, _ = td_lambda_returns(values, next_values, rewards, dones, gamma=0.9, lam=0.0, truncated=truncated)
    torch.testing.assert_close(zero, rewards + 0.9 * bootstrap * next_values)  # one-step TD targets
    one, _ = td_lambda_returns(values, next_values, rewards, dones, gamma=0.9, lam=1.0, truncated=truncated)
    expected, following = torch.empty_like(rewards), next_values[-1]
    for t in reversed(range(30)):  # Monte-Carlo: discounted rewards to the end, bootstrapped at cuts
        following = rewards[t] + 0.9 * torch.where(dones[t].bool(), truncated[t] * next_values[t], following)
        expected[t] = following
    torch.testing.assert_close(one, expected)
    # with lam = 1 the values inside an episode do not matter
    shuffled = values + torch.randn_like(values)
    consistent = torch.where(dones.bool(), next_values, torch.cat([shuffled[1:], next_values[-1:]]))
    moved, _ = td_lambda_returns(shuffled, consistent, rewards, dones, gamma=0.9, lam=1.0, truncated=truncated)
    torch.testing.assert_close(moved, one)


def test_lambda_returns_are_detached_float32_for_half_and_time_major():
    values, next_values, rewards, dones, truncated = rollout(12, (3,), seed=14)
    grad_values = values.clone().requires_grad_()
    returns, advantages = td_lambda_returns(grad_values, next_values, rewards, dones)
    assert not returns.requires_grad and not advantages.requires_grad
    for dtype in [torch.float16, torch.bfloat16]:
        low = [t.to(dtype) for t in (values, next_values, rewards, dones, truncated)]
        returns, advantages = td_lambda_returns(*low[:4], truncated=low[4])
        assert returns.dtype == torch.float32 and advantages.dtype == torch.float32
        reference, _ = td_lambda_returns(*[t.float() for t in low[:4]], truncated=low[4].float())
        torch.testing.assert_close(returns, reference)
    # time-major: the episode boundaries of one column do not affect another column
    single, _ = td_lambda_returns(values[:, :1], next_values[:, :1], rewards[:, :1], dones[:, :1], truncated=truncated[:, :1])
    full, _ = td_lambda_returns(values, next_values, rewards, dones, truncated=truncated)
    torch.testing.assert_close(full[:, :1], single)


def test_lambda_returns_on_devices_and_empty(device):
    values, next_values, rewards, dones, truncated = (t.to(device) for t in rollout(20, (4,), seed=15))
    returns, advantages = td_lambda_returns(values, next_values, rewards, dones, truncated=truncated)
    cpu, _ = td_lambda_returns(*(t.cpu() for t in (values, next_values, rewards, dones)), truncated=truncated.cpu())
    assert returns.device.type == device.type
    torch.testing.assert_close(returns.cpu(), cpu)
    empty = torch.zeros(0, 3, device=device)
    returns, advantages = td_lambda_returns(empty, empty, empty, empty)
    assert returns.shape == (0, 3) and advantages.shape == (0, 3)


def test_lambda_returns_refusals():
    values, next_values, rewards, dones, truncated = rollout(5, (2,), seed=16)
    with pytest.raises(ValueError, match=r"lam must be in \[0, 1\], got 1.5"):
        td_lambda_returns(values, next_values, rewards, dones, lam=1.5)
    with pytest.raises(ValueError, match="gamma must be a non-negative number, got -1"):
        td_lambda_returns(values, next_values, rewards, dones, gamma=-1)
    with pytest.raises(ValueError, match="time first"):
        td_lambda_returns(values[0, 0], next_values[0, 0], rewards[0, 0], dones[0, 0])
    with pytest.raises(ValueError, match="values and rewards must have the same shape"):
        td_lambda_returns(values, next_values, rewards.T, dones)
    with pytest.raises(ValueError, match="values and dones must have the same shape"):
        td_lambda_returns(values, next_values, rewards, dones[:-1])
    with pytest.raises(TypeError, match="values must be a floating-point tensor"):
        td_lambda_returns(values.long(), next_values, rewards, dones)
    with pytest.raises(ValueError, match="truncated is 1 where dones is 0"):
        td_lambda_returns(values, next_values, rewards, torch.zeros_like(dones), truncated=torch.ones_like(dones))


def test_lambda_returns_are_not_a_loss():
    assert "td_lambda_returns" not in lossbook.__all__
    assert "td_loss" in lossbook.__all__
