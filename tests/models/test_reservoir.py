"""The echo state network against independent computations, and the Mackey-Glass series."""
import numpy as np
import pytest
import torch

from rnnlab.data.mackey_glass import mackey_glass
from rnnlab.errors import ConfigError
from rnnlab.reservoir import EchoStateNetwork, spectral_radius


def _data(T=300, I=2, O=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(T, I, generator=g, dtype=torch.float64) * 2 - 1             # (T, I)
    y = torch.rand(T, O, generator=g, dtype=torch.float64)                     # (T, O)
    return u, y


@pytest.mark.parametrize("radius", [0.5, 0.9, 1.25, 3.0])
@pytest.mark.parametrize("density", [0.05, 0.3, 1.0])
def test_spectral_radius_is_scaled(radius, density):
    esn = EchoStateNetwork(2, 60, spectral_radius=radius, density=density, seed=3)
    eig = np.linalg.eigvals(esn.W.numpy())                  # independent of torch's eigvals
    assert abs(np.abs(eig).max() - radius) < 1e-6
    assert abs(spectral_radius(esn.W) - radius) < 1e-6


def test_density_and_input_scaling():
    esn = EchoStateNetwork(3, 200, density=0.1, input_scaling=0.4, seed=0)
    assert abs((esn.W != 0).double().mean().item() - 0.1) < 0.01
    assert esn.W_in.shape == (200, 4)
    assert esn.W_in.abs().max().item() <= 0.4
    assert esn.W_in.abs().max().item() > 0.39


def test_states_follow_the_update_equation():
    u, _ = _data(T=40, I=2)
    esn = EchoStateNetwork(2, 30, spectral_radius=1.1, density=0.2, leak_rate=0.3, seed=5)
    x0 = torch.linspace(-0.5, 0.5, 30, dtype=torch.float64)
    got = esn.states(u, x0)
    W, W_in, a = esn.W.numpy(), esn.W_in.numpy(), 0.3
    x = x0.numpy()
    for t in range(40):
        x = (1 - a) * x + a * np.tanh(W_in @ np.concatenate([[1.0], u[t].numpy()]) + W @ x)
        np.testing.assert_allclose(got[t].numpy(), x, rtol=0, atol=1e-12)
    # the one-step function and a continued run agree with the whole run
    np.testing.assert_allclose(esn.step(u[0], x0).numpy(), got[0].numpy(), atol=1e-14)
    torch.testing.assert_close(esn.states(u[20:], got[19]), got[20:], rtol=0, atol=1e-13)


@pytest.mark.parametrize("ridge", [1e-6, 1e-2, 1.0])
def test_ridge_readout_is_the_augmented_least_squares(ridge):
    u, y = _data()
    esn = EchoStateNetwork(2, 40, spectral_radius=0.9, density=0.3, seed=2)
    X = esn.fit(u, y, washout=50, ridge=ridge)
    Zt = np.concatenate([np.ones((300, 1)), u.numpy(), X.numpy()], axis=1)[50:]   # (T', D)
    D = Zt.shape[1]
    # min ||Z^T W^T - Y^T||^2 + ridge ||W||^2  ==  lstsq of [Z^T; sqrt(ridge) I] W^T = [Y^T; 0]
    A = np.concatenate([Zt, np.sqrt(ridge) * np.eye(D)])
    B = np.concatenate([y.numpy()[50:], np.zeros((D, 3))])
    want = np.linalg.lstsq(A, B, rcond=None)[0].T                               # (O, D)
    assert esn.W_out.shape == (3, D)
    np.testing.assert_allclose(esn.W_out.numpy(), want, rtol=0, atol=1e-8)
    # and the outputs are W_out z_t
    np.testing.assert_allclose(esn.predict(u).numpy(), np.concatenate(
        [np.ones((300, 1)), u.numpy(), X.numpy()], axis=1) @ want.T, atol=1e-8)


def test_ridge_zero_is_plain_least_squares():
    u, y = _data()
    esn = EchoStateNetwork(2, 20, spectral_radius=0.8, density=0.5, seed=4)
    X = esn.fit(u, y, washout=10, ridge=0.0)
    Zt = torch.cat([torch.ones(300, 1, dtype=torch.float64), u, X], dim=1)[10:]
    want = torch.linalg.lstsq(Zt, y[10:]).solution.T
    torch.testing.assert_close(esn.W_out, want, rtol=0, atol=1e-8)


def test_generate_feeds_outputs_back():
    u, _ = _data(T=100, I=1, O=1)
    esn = EchoStateNetwork(1, 25, density=0.4, leak_rate=0.7, seed=6)
    esn.fit(u[:-1], u[1:], washout=10, ridge=1e-4)
    got = esn.generate(5, u[:30])
    X = esn.states(u[:30])
    y = esn.predict(u[:30])[-1]                     # y_0: teacher-forced output after the warmup
    torch.testing.assert_close(got[0], y)
    x, u_t = X[-1], y
    for k in range(1, 5):                           # by hand: u_{k} = y_{k-1}
        x = esn.step(u_t, x)
        u_t = esn.readout(u_t[None], x[None])[0]
        torch.testing.assert_close(got[k], u_t)


def test_seed_decides_the_reservoir():
    a = EchoStateNetwork(2, 30, seed=7)
    b = EchoStateNetwork(2, 30, seed=7)
    c = EchoStateNetwork(2, 30, seed=8)
    assert torch.equal(a.W, b.W) and torch.equal(a.W_in, b.W_in)
    assert not torch.equal(a.W, c.W) and not torch.equal(a.W_in, c.W_in)
    state = torch.random.get_rng_state()
    EchoStateNetwork(2, 30, seed=9)                 # the global generator is not touched
    assert torch.equal(state, torch.random.get_rng_state())


def test_mackey_glass_properties():
    s = mackey_glass(1500)
    assert s.shape == (1500,) and s.dtype == torch.float64
    assert 0.2 < s.min().item() < 0.6 and 1.1 < s.max().item() < 1.5
    assert s.std().item() > 0.15                      # chaotic, not settled to a fixed point
    assert torch.equal(s, mackey_glass(1500))
    assert not torch.equal(s, mackey_glass(1500, x0=1.0))
    # tau = 5 is not chaotic: the series settles to a periodic orbit or a fixed point
    assert mackey_glass(300, tau=5.0, transient=2000.0).std().item() < 0.2


def test_mackey_glass_integration_converges():
    """h = 0.1 agrees with finer steps over the first 100 time units (before chaos grows), and the
    error shrinks as the step does (second order: the delayed midpoint is interpolated)."""
    coarse = mackey_glass(100, transient=0.0)
    fine = mackey_glass(100, transient=0.0, dt=0.025)
    finer = mackey_glass(100, transient=0.0, dt=0.0125)
    assert (coarse - fine).abs().max().item() < 1e-4
    assert (fine - finer).abs().max().item() < 1e-5


@pytest.mark.parametrize("kwargs", [
    dict(spectral_radius=0.0), dict(spectral_radius=-1.0), dict(density=0.0),
    dict(density=1.5), dict(leak_rate=0.0), dict(leak_rate=1.2), dict(input_scaling=0.0),
    dict(reservoir_size=0), dict(input_size=0)])
def test_bad_configuration(kwargs):
    args = dict(input_size=1, reservoir_size=10)
    args.update(kwargs)
    with pytest.raises(ConfigError):
        EchoStateNetwork(**args)


def test_bad_data():
    u, y = _data(T=50, I=2, O=1)
    esn = EchoStateNetwork(2, 10, seed=0)
    with pytest.raises(ConfigError, match="not trained"):
        esn.predict(u)
    with pytest.raises(ConfigError, match=r"\(T, I\)"):
        esn.states(torch.zeros(50, 3, dtype=torch.float64))
    with pytest.raises(ConfigError, match="targets"):
        esn.fit(u, y[:40])
    with pytest.raises(ConfigError, match="washout"):
        esn.fit(u, y, washout=50)
    with pytest.raises(ConfigError, match="ridge"):
        esn.fit(u, y, ridge=-1e-3)
    with pytest.raises(ConfigError, match="x0"):
        esn.states(u, torch.zeros(9))
    esn.fit(u, y, washout=5)
    with pytest.raises(ConfigError, match="O == I"):
        esn.generate(3, u)
    with pytest.raises(ConfigError):
        mackey_glass(0)
    with pytest.raises(ConfigError, match="multiple of dt"):
        mackey_glass(10, tau=17.05)
