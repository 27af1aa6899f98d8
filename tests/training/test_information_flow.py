"""The information-flow regularizer (rnnlab.training.information_flow), Pascanu et al. 2013:

    Omega = sum_k ( ||delta_{k+1} ds_{k+1}/ds_k|| / ||delta_{k+1}|| - 1 )^2

checked against a plain-autograd recurrence written out here: its deltas (total derivatives, by
probes added to every state), the back-propagated vectors (autograd's own vector-Jacobian
products), and Omega's value and gradient computed from explicit Jacobian matrices with the
held-constant parts (delta, phi') detached; zero when the Jacobian preserves norms; the trainer
option on the command line.
"""
import pytest
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.errors import ConfigError
from rnnlab.models.long_memory import AddingModel, AddingModelConfig
from rnnlab.tasks.long_memory import Adding, AddingDataConfig, adding_examples
from rnnlab.training.config import TrainConfig
from rnnlab.training.information_flow import bptt_engine, information_flow, information_flow_of_loss

T, B, I, H = 6, 3, 2, 4
LENGTHS = torch.tensor([6, 4, 5])


def layer_and_loss(d, nonlinearity="tanh", seed=0):
    """A one-layer RNN (skip connections from d steps back, or none for d = 0) and a loss that reads
    every output and the final states."""
    torch.manual_seed(seed)
    opts = {"skip_steps": d} if d else {}
    layer = rnnlab.RNN(I, H, nonlinearity=nonlinearity, dtype=torch.float64, engine="bptt", **opts)
    x = torch.randn(T, B, I, dtype=torch.float64)
    w = torch.linspace(-1, 1, H, dtype=torch.float64)

    def loss_of(out, h_last):
        return (out * w).sin().sum() + (2 * h_last).tanh().sum()
    return layer, x, loss_of


def reference(layer, x, loss_of, d):
    """The stacked-state recurrence s_t = [h_t, .., h_{t-d+1}] in plain autograd, with a zero
    probe added to every s_t: returns (h (T, B, H), delta_t = dL/ds_t (T, B, d', H) from the
    probes, v_t = delta_t ds_t/ds_{t-1} by autograd (T, B, d', H)), d' = max(d, 1)."""
    p = dict(layer.named_parameters())
    W_ih, W_hh, b = p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"] + p["bias_hh_l0"]
    W_skip = p.get("weight_skip_l0")
    D = max(d, 1)
    phi = {"tanh": torch.tanh, "relu": torch.relu}[layer.cells[0].nonlinearity]
    s = x.new_zeros(B, D, H)
    probes, states, hs = [], [], []
    for t in range(T):
        a = x[t] @ W_ih.T + s[:, 0] @ W_hh.T + b
        if d:
            a = a + s[:, D - 1] @ W_skip.T
        h = phi(a)
        new = torch.cat((h.unsqueeze(1), s[:, :D - 1]), dim=1)                 # (B, D, H)
        new = torch.where((t < LENGTHS).view(B, 1, 1), new, s)                 # carried at padding
        states.append(new)
        probe = torch.zeros_like(new, requires_grad=True)
        probes.append(probe)
        s = new + probe
        hs.append(s[:, 0])
    h = torch.stack(hs)                                                          # (T, B, H)
    out = h * (torch.arange(T).view(T, 1, 1) < LENGTHS.view(1, B, 1))
    loss = loss_of(out, h[-1])
    deltas = torch.stack(torch.autograd.grad(loss, probes, retain_graph=True))   # (T, B, D, H)
    # v_t = delta_t ds_t/ds_{t-1}: s_t depends on s_{t-1} + probe_{t-1}
    vs = [torch.autograd.grad(states[t], probes[t - 1], deltas[t], retain_graph=True)[0]
          for t in range(1, T)]
    return h.detach(), deltas, vs


def explicit_omega(layer, h, deltas, d):
    """Omega from explicit Jacobian matrices J_t = ds_t/ds_{t-1} (B, D*H, D*H), phi' and delta
    held constant (detached), the recurrent weights live."""
    p = dict(layer.named_parameters())
    D = max(d, 1)
    omega = 0.0
    for t in range(T):
        dphi = (1 - h[t] ** 2) if layer.cells[0].nonlinearity == "tanh" else (h[t] > 0).double()
        J = h.new_zeros(B, D * H, D * H)
        top = dphi.unsqueeze(2) * p["weight_hh_l0"]                              # diag(phi') W_hh
        J[:, :H, :H] = top
        if d:
            J[:, :H, (D - 1) * H:] = J[:, :H, (D - 1) * H:] + dphi.unsqueeze(2) * p["weight_skip_l0"]
        for j in range(1, D):
            J[:, j * H:(j + 1) * H, (j - 1) * H:j * H] = torch.eye(H, dtype=h.dtype)
        delta = deltas[t].reshape(B, D * H).detach()
        v = torch.einsum("bi,bij->bj", delta, J)
        keep = (delta.pow(2).sum(1) > 0) & (t < LENGTHS)
        term = (v.norm(dim=1) / delta.norm(dim=1) - 1) ** 2
        omega = omega + torch.where(keep, term, torch.zeros_like(term)).mean()
    return omega


def rnnlab_omega(layer, x, loss_of):
    with bptt_engine(layer):
        out, h_n, states = layer(x, lengths=LENGTHS, return_states=True)
        h_last = h_n[0][0] if isinstance(h_n, tuple) else h_n[0]
        loss = loss_of(out, h_last)
        return information_flow_of_loss(layer, loss, states, LENGTHS)


@pytest.mark.parametrize("d", [0, 1, 3])
def test_omega_and_its_gradient_equal_the_formula_in_autograd(d):
    layer, x, loss_of = layer_and_loss(d)
    h, deltas, vs = reference(layer, x, loss_of, d)
    omega = rnnlab_omega(layer, x, loss_of)
    ref = explicit_omega(layer, h, deltas, d)
    torch.testing.assert_close(omega, ref, rtol=1e-10, atol=1e-12)
    live = [layer.weight_hh_l0] + ([layer.weight_skip_l0] if d else [])
    grads = torch.autograd.grad(omega, live + [layer.weight_ih_l0, layer.bias_ih_l0], allow_unused=True)
    ref_grads = torch.autograd.grad(ref, live)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-12)
    assert grads[len(live)] is None and grads[len(live) + 1] is None    # W_ih, b: held constant
    assert float(omega.detach()) > 0


@pytest.mark.parametrize("d", [0, 2])
def test_deltas_and_back_propagated_vectors_are_autograds(d):
    """The regularizer's delta_{k+1} and v_k equal the probes' total derivatives and autograd's
    vector-Jacobian products of the true step (the Omega above is built on them)."""
    from rnnlab.engines.bptt import record_state_gradients
    from rnnlab.training.information_flow import back_propagated, stacked_delta
    layer, x, loss_of = layer_and_loss(d, seed=1)
    h, deltas, vs = reference(layer, x, loss_of, d)
    with record_state_gradients() as record:
        out, h_n, states = layer(x, lengths=LENGTHS, return_states=True)
        loss_of(out, (h_n[0] if isinstance(h_n, tuple) else h_n)[0]).backward()
    cell = layer.cells[0]
    delta = stacked_delta(cell, record[-1][1])
    real = (torch.arange(T).view(T, 1) < LENGTHS).view(T, B, 1, 1)
    torch.testing.assert_close(delta * real, deltas * real, rtol=1e-10, atol=1e-12)
    v = back_propagated(cell, layer.cell_params(0), states[0], delta).detach()
    for t in range(1, T):  # v at step t (built from h_t) is delta_t ds_t/ds_{t-1}
        keep = (t < LENGTHS).view(B, 1, 1)
        torch.testing.assert_close(v[t] * keep, vs[t - 1] * keep, rtol=1e-10, atol=1e-12)


def test_zero_when_the_jacobian_preserves_norms():
    """relu in its linear region with W_hh a permutation (orthogonal): ds_{k+1}/ds_k = W_hh keeps
    every norm, Omega = 0; with W_hh halved every ratio is 1/2 and Omega_k = 1/4."""
    layer, x, loss_of = layer_and_loss(0, nonlinearity="relu")
    perm = torch.eye(H, dtype=torch.float64)[torch.tensor([2, 0, 3, 1])]
    with torch.no_grad():
        layer.weight_hh_l0.copy_(perm)
        layer.bias_ih_l0.fill_(10.0)       # every pre-activation positive: phi' = 1
    x = x.abs()
    assert float(rnnlab_omega(layer, x, loss_of).detach()) == pytest.approx(0.0, abs=1e-12)
    with torch.no_grad():
        layer.weight_hh_l0.mul_(0.5)
    expected = 0.25 * LENGTHS.double().mean()     # every real step, averaged over the batch
    assert float(rnnlab_omega(layer, x, loss_of).detach()) == pytest.approx(float(expected), rel=1e-12)
    h = torch.ones(T, B, H, dtype=torch.float64)
    zero = (torch.zeros(T, B, H, dtype=torch.float64),)
    assert float(information_flow(layer.cells[0], layer.cell_params(0), h, zero)) == 0.0  # no delta: no term


def test_the_adding_objective_adds_lambda_omega():
    data = AddingDataConfig(length=8, train_sequences=6, valid_sequences=0, test_sequences=0)
    examples = adding_examples(data.check(), "train")
    torch.manual_seed(0)
    model = AddingModel(AddingModelConfig(inputs=2, cell="rnn", hidden_size=5, skip_steps=2))
    lam = 0.7
    task = Adding({"train": examples}, TrainConfig(information_flow=lam).check(), {}, "modern")
    out = task.batch_loss(model, examples, train=True)
    plain = Adding({"train": examples}, TrainConfig().check(), {}, "modern").batch_loss(model, examples, True)
    assert model.rnn.engine == "auto"                              # restored after the batch
    assert out.loss_sum == pytest.approx(plain.loss_sum, rel=1e-6)  # the figures are the loss's
    from rnnlab.tasks.examples import pad
    x, lengths = pad([e.x for e in examples])
    y = torch.tensor([e.y for e in examples])
    with bptt_engine(model.rnn):
        y_hat, states = model(x, lengths, return_states=True)
        loss = ((y_hat - y) ** 2).mean()
        omega = information_flow_of_loss(model.rnn, loss, states, lengths)
    assert float(omega.detach()) > 0
    assert float(out.objective) == pytest.approx(float(plain.objective + lam * omega), rel=1e-6)
    assert float(task.batch_loss(model, examples, train=False).objective) == \
        pytest.approx(float(plain.objective), rel=1e-6)             # evaluation: the loss alone


def test_the_option_on_the_command_line(tmp_path, capsys):
    s = rnnlab.train(task="adding", cell="rnn", information_flow=0.1, length=6, train_sequences=40,
                     valid_sequences=10, test_sequences=10, hidden_size=4, batch_size=10,
                     max_steps=3, epochs=0, threads=1, progress=False, out=str(tmp_path / "ok"))
    assert s["steps"] == 3
    common = ["--max-steps", "2", "--epochs", "0", "--threads", "1", "--no-progress"]
    assert main(["train", "--task", "sequence-copy", "--information-flow", "0.1", *common,
                 "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()   # the flag exists for the adding and copy tasks only
    assert err == "rnnlab: error: train --task sequence-copy: unknown option --information-flow"
    with pytest.raises(ConfigError, match="adding and copy only"):
        rnnlab.train(task="sequence-copy", information_flow=0.1, max_steps=2, epochs=0, threads=1,
                     progress=False, out=str(tmp_path / "api"))
    assert not (tmp_path / "api").exists()
    assert main(["train", "--task", "adding", "--information-flow", "-1", *common,
                 "--out", str(tmp_path / "b")]) == 2
    assert "information_flow must be a finite number >= 0" in capsys.readouterr().err
    assert main(["train", "--task", "copy", "--cell", "lstm", "--information-flow", "0.1", "--length", "4",
                 "--train-sequences", "20", *common, "--out", str(tmp_path / "c")]) == 2
    assert "defined for one layer of the vanilla RNN (--cell rnn --layers 1)" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()  # refused before the run directory is made
    with pytest.raises(ConfigError, match="information_flow"):
        TrainConfig(information_flow=float("nan")).check()


def test_the_task_listing_shows_the_option_only_where_it_applies(capsys):
    for task, shown in (("adding", True), ("copy", True), ("lm", False), ("forecast", False)):
        assert main(["tasks", task]) == 0
        assert ("--information-flow" in capsys.readouterr().out) is shown, task
