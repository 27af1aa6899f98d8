"""The Neural Turing Machine (rnnlab.memory) and ``--task sequence-copy``: each addressing step
against a hand computation, the write and read equations against explicit loops, a gradient check
of one full step, the copy-task generator, and the task through Python and the command line."""
import json
import math

import pytest
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.data.sequence_copy import copy_sequence, random_vectors
from rnnlab.errors import ConfigError
from rnnlab.memory import (NTM, NTMCell, NTMState, address, circular_shift, content_weighting,
                           interpolate, read, sharpen, write)
from rnnlab.memory.ntm import MEMORY_INIT
from rnnlab.tasks.sequence_copy import SequenceCopyDataConfig, batch_targets, split_examples

D = torch.float64


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=D)


def distribution(*shape, seed=0):
    return torch.softmax(rand(*shape, seed=seed) * 2, dim=-1)


# ------------------------------------------------------------------------------ addressing steps
def test_content_weighting_is_softmax_of_beta_times_cosine():
    B, H, N, M = 2, 3, 5, 4
    memory, keys, beta = rand(B, N, M, seed=1), rand(B, H, M, seed=2), rand(B, H, 1, seed=3).abs() * 3
    got = content_weighting(memory, keys, beta)
    for b in range(B):
        for h in range(H):
            k = keys[b, h].tolist()
            cos = []
            for i in range(N):
                row = memory[b, i].tolist()
                dot = sum(u * v for u, v in zip(k, row))
                cos.append(dot / (math.sqrt(sum(u * u for u in k)) * math.sqrt(sum(v * v for v in row))))
            e = [math.exp(float(beta[b, h, 0]) * c) for c in cos]
            for i in range(N):
                assert float(got[b, h, i]) == pytest.approx(e[i] / sum(e), rel=1e-9)


def test_cosine_of_a_zero_key_is_finite_with_a_finite_gradient():
    memory = torch.zeros(1, 4, 3, dtype=D, requires_grad=True)
    keys = torch.zeros(1, 1, 3, dtype=D, requires_grad=True)
    w = content_weighting(memory, keys, torch.ones(1, 1, 1, dtype=D))
    w[0, 0, 0].backward()
    assert torch.allclose(w, torch.full_like(w, 0.25))
    assert torch.isfinite(memory.grad).all() and torch.isfinite(keys.grad).all()


def test_interpolation_by_hand():
    wc, wp, g = distribution(1, 2, 4, seed=1), distribution(1, 2, 4, seed=2), torch.tensor([[[0.25], [1.0]]], dtype=D)
    got = interpolate(wc, wp, g)
    assert torch.allclose(got[0, 0], 0.25 * wc[0, 0] + 0.75 * wp[0, 0])
    assert torch.allclose(got[0, 1], wc[0, 1])


@pytest.mark.parametrize("shifts", [(-1, 0, 1), (-2, 0, 1), (0,), (1, 3)])
def test_circular_shift_is_the_modular_convolution_sum(shifts):
    B, H, N = 2, 2, 5
    w, s = distribution(B, H, N, seed=4), distribution(B, H, len(shifts), seed=5)
    got = circular_shift(w, s, shifts)
    for b in range(B):
        for h in range(H):
            kernel = {d % N: float(s[b, h, k]) for k, d in enumerate(shifts)}     # s at offsets mod N
            for i in range(N):
                want = sum(float(w[b, h, j]) * kernel.get((i - j) % N, 0.0) for j in range(N))
                assert float(got[b, h, i]) == pytest.approx(want, rel=1e-12)
    rolled = sum(s[..., k:k + 1] * torch.roll(w, d, dims=-1) for k, d in enumerate(shifts))
    assert torch.allclose(got, rolled, rtol=1e-12, atol=0)
    # a certain shift by +1 moves the focus from location 0 to location 1, and -1 wraps to N - 1
    one_hot = torch.zeros(1, 1, N, dtype=D)
    one_hot[0, 0, 0] = 1
    assert circular_shift(one_hot, torch.tensor([[[0.0, 0.0, 1.0]]], dtype=D), (-1, 0, 1))[0, 0, 1] == 1
    assert circular_shift(one_hot, torch.tensor([[[1.0, 0.0, 0.0]]], dtype=D), (-1, 0, 1))[0, 0, N - 1] == 1


def test_sharpening_by_hand_and_with_zero_weights():
    w, gamma = distribution(1, 2, 6, seed=6), torch.tensor([[[1.0], [2.5]]], dtype=D)
    got = sharpen(w, gamma)
    for h in range(2):
        p = [float(v) ** float(gamma[0, h, 0]) for v in w[0, h]]
        assert got[0, h].tolist() == pytest.approx([v / sum(p) for v in p], rel=1e-9)
    zero = torch.tensor([[[0.0, 0.0, 1.0, 0.0]]], dtype=D, requires_grad=True)
    g = torch.tensor([[[3.0]]], dtype=D, requires_grad=True)
    out = sharpen(zero, g)
    (out * rand(1, 1, 4, seed=7)).sum().backward()
    assert torch.isfinite(zero.grad).all() and torch.isfinite(g.grad).all()
    assert float(out[0, 0, 2].detach()) == pytest.approx(1.0)


def test_address_weightings_sum_to_one():
    B, H, N, M = 3, 2, 7, 4
    w = address(rand(B, N, M, seed=1), distribution(B, H, N, seed=2), rand(B, H, M, seed=3),
                rand(B, H, 1, seed=4).abs() * 5, torch.sigmoid(rand(B, H, 1, seed=5)),
                distribution(B, H, 3, seed=6), 1 + rand(B, H, 1, seed=7).abs(), (-1, 0, 1))
    assert (w >= 0).all() and torch.allclose(w.sum(-1), torch.ones(B, H, dtype=D))


# ------------------------------------------------------------------------------ read and write
def test_read_is_the_weighted_sum_of_rows():
    memory, w = rand(2, 5, 3, seed=1), distribution(2, 2, 5, seed=2)
    got = read(memory, w)
    for b in range(2):
        for h in range(2):
            for j in range(3):
                want = sum(float(w[b, h, i] * memory[b, i, j]) for i in range(5))
                assert float(got[b, h, j]) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("heads", [1, 2])
def test_write_erases_then_adds(heads):
    B, N, M = 2, 4, 3
    memory, w = rand(B, N, M, seed=1), distribution(B, heads, N, seed=2)
    erase, add = torch.sigmoid(rand(B, heads, M, seed=3)), torch.tanh(rand(B, heads, M, seed=4))
    got = write(memory, w, erase, add)
    for b in range(B):
        for i in range(N):
            for j in range(M):
                kept = float(memory[b, i, j])
                for h in range(heads):
                    kept *= 1 - float(w[b, h, i] * erase[b, h, j])
                want = kept + sum(float(w[b, h, i] * add[b, h, j]) for h in range(heads))
                assert float(got[b, i, j]) == pytest.approx(want, rel=1e-12)
    # a head fully on location 2 with erase 1 replaces that row by a and leaves the others
    focus = torch.zeros(1, 1, N, dtype=D)
    focus[0, 0, 2] = 1
    out = write(memory[:1], focus, torch.ones(1, 1, M, dtype=D), add[:1, :1])
    assert torch.equal(out[0, 2], add[0, 0]) and torch.equal(out[0, [0, 1, 3]], memory[0, [0, 1, 3]])


# ------------------------------------------------------------------------------ the machine
def small_cell(controller="lstm", write_heads=1):
    torch.manual_seed(0)
    return NTMCell(3, 2, controller_size=5, memory_size=6, memory_width=4, read_heads=2,
                   write_heads=write_heads, shifts=(-1, 0, 1), controller=controller).double()


@pytest.mark.slow_cases
@pytest.mark.parametrize("controller,write_heads", [("lstm", 1), ("feedforward", 2)])
def test_gradcheck_of_one_full_step(controller, write_heads):
    cell = small_cell(controller, write_heads)
    B, H = 2, 2 + write_heads
    x = rand(B, 3, seed=1).requires_grad_()
    memory = rand(B, 6, 4, seed=2).requires_grad_()
    reads = rand(B, 2, 4, seed=3).requires_grad_()
    weights = distribution(B, H, 6, seed=4).requires_grad_()
    ctrl = tuple(rand(B, 5, seed=5 + k).requires_grad_() for k in range(2)) if controller == "lstm" else ()
    params = dict(cell.named_parameters())

    def step(x, memory, reads, weights, head_weight, *ctrl):
        p = dict(params, **{"heads.emit.weight": head_weight})
        y, s = torch.func.functional_call(cell, p, (x, NTMState(tuple(ctrl), memory, reads, weights)))
        return (y, s.memory, s.reads, s.weights) + tuple(s.controller)

    head_weight = params["heads.emit.weight"].detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(step, (x, memory, reads, weights, head_weight) + ctrl)


def test_ntm_over_time_equals_a_loop_of_the_cell_and_weightings_are_distributions():
    cell = small_cell()
    ntm = NTM(3, 2)
    ntm.cell = cell
    x = rand(7, 2, 3, seed=9)
    y, state, weights = ntm(x, record=True)
    s = None
    for t in range(7):
        yt, s = cell(x[t], s)
        assert torch.allclose(y[t], yt)
    assert torch.allclose(state.memory, s.memory)
    assert weights.shape == (7, 2, 3, 6)
    assert torch.allclose(weights.sum(-1), torch.ones(7, 2, 3, dtype=D))


class Recorded(torch.nn.Module):
    def __init__(self, ntm):
        super().__init__()
        self.ntm = ntm

    def forward(self, x):
        y, state, weights = self.ntm(x, record=True)
        return y, state.memory, weights


@pytest.mark.parametrize("controller", ["lstm", "feedforward"])
def test_torch_export_keeps_the_number_of_steps_dynamic(controller):
    """Under export the loop over time is one scan: the outputs, the final memory and the
    recorded weightings at lengths not seen at export equal the eager loop's."""
    model = Recorded(NTM(3, 2, controller_size=4, memory_size=6, memory_width=3,
                         controller=controller).double()).eval()
    dims = {0: torch.export.Dim("T", min=1), 1: torch.export.Dim("B", min=1)}
    with torch.no_grad():
        program = torch.export.export(model, (rand(5, 2, 3),), dynamic_shapes=(dims,))
        for T, B in ((5, 2), (1, 3), (9, 1)):
            x = rand(T, B, 3, seed=T)
            for got, want in zip(program.module()(x), model(x)):
                torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_initial_state_is_the_documented_one():
    cell = small_cell()
    s = cell.initial_state(3, torch.zeros(1, dtype=D))
    assert torch.equal(s.memory, torch.full((3, 6, 4), MEMORY_INIT, dtype=D))
    assert torch.equal(s.weights[:, :, 0], torch.ones(3, 3, dtype=D)) and float(s.weights.sum()) == 9
    assert torch.equal(s.reads[1], cell.initial_read)
    with pytest.raises(ConfigError, match="controller takes one of 'lstm', 'feedforward'; got 'gru'"):
        NTMCell(3, 2, controller="gru")
    with pytest.raises(ConfigError, match="shifts must be distinct"):
        NTMCell(3, 2, memory_size=4, shifts=(0, 0))


# ------------------------------------------------------------------------------ the copy task data
def test_copy_sequence_layout():
    v = random_vectors(1, [5], 8, torch.Generator().manual_seed(0))[0]            # (5, 8)
    x, y = copy_sequence(v)
    assert x.shape == (11, 9) and torch.equal(y, v)
    assert torch.equal(x[:5, :8], v) and x[:5, 8].sum() == 0                        # vectors, no delimiter
    assert torch.equal(x[5], torch.tensor([0.0] * 8 + [1.0]))                       # the delimiter
    assert x[6:].abs().sum() == 0                                                   # silence while copying
    assert set(v.flatten().tolist()) == {0.0, 1.0}


def test_batch_targets_place_each_copy_after_its_own_delimiter():
    data = SequenceCopyDataConfig(train_sequences=6, min_length=2, max_length=5)
    examples = split_examples(data, "train")
    x, y, mask = batch_targets(examples)
    assert x.shape[0] == 2 * max(len(e.y) for e in examples) + 1
    for b, e in enumerate(examples):
        L = len(e.y)
        assert 2 <= L <= 5
        assert mask[:, b].nonzero().flatten().tolist() == list(range(L + 1, 2 * L + 1))
        assert torch.equal(y[L + 1:2 * L + 1, b], x[:L, b, :8])                     # target = input
        assert float(x[L, b, 8]) == 1
    again = split_examples(data, "train")
    assert all(torch.equal(a.x, b.x) for a, b in zip(examples, again))
    other = split_examples(SequenceCopyDataConfig(train_sequences=6, min_length=2, max_length=5, data_seed=1), "train")
    assert not all(a.x.shape == b.x.shape and torch.equal(a.x, b.x) for a, b in zip(examples, other))
    with pytest.raises(ConfigError, match="max_length must be >= min_length 5, got 2"):
        SequenceCopyDataConfig(min_length=5, max_length=2).check()


# ------------------------------------------------------------------------------ the task
TINY = dict(task="sequence-copy", min_length=1, max_length=3, train_sequences=64, valid_sequences=16,
            test_sequences=16, hidden_size=8, memory_size=8, memory_width=4, batch_size=8,
            epochs=1, threads=1, progress=False)


def test_train_evaluate_predict_in_python(tmp_path):
    s = rnnlab.train(out=str(tmp_path / "run"), **TINY)
    assert set(s["test"]) == {"loss", "per_bit_error", "cost"}
    assert 0 <= s["test"]["per_bit_error"] <= 1
    r = rnnlab.evaluate(tmp_path / "run", lengths=[2, 6], sequences=10)
    assert r["per_bit_error"] == pytest.approx(s["test"]["per_bit_error"])
    assert r["loss"] == pytest.approx(s["test"]["loss"], rel=1e-5) and r["sequences"] == 16
    assert set(r) == {"loss", "per_bit_error", "cost", "sequences", "per_bit_error_2", "cost_2",
                      "per_bit_error_6", "cost_6"}
    # cost is bits per sequence: the loss (nats per bit) times the bits, in bits, per sequence
    test = split_examples(SequenceCopyDataConfig(min_length=1, max_length=3, test_sequences=16), "test")
    assert r["cost"] == pytest.approx(r["loss"] * sum(e.y.numel() for e in test) / math.log(2) / 16)
    run = rnnlab.tasks.recipe.load_run(tmp_path / "run")
    v = torch.tensor([[1.0, 0, 1, 1, 0, 0, 1, 0], [0, 1, 1, 0, 0, 0, 0, 1]])
    x, _ = copy_sequence(v)
    with torch.no_grad():
        want = (run.model(x.unsqueeze(1))[3:, 0] > 0).int().tolist()
    got = rnnlab.predict(tmp_path / "run", ["10110010 01100001", ""])
    assert got == [" ".join("".join(map(str, row)) for row in want), ""]
    with pytest.raises(rnnlab.errors.DataError, match="line 1: expected vectors of 8 characters 0/1"):
        rnnlab.predict(tmp_path / "run", ["1011001 01100001"])
    with pytest.raises(ConfigError, match="model takes one of 'ntm', 'lstm'"):
        rnnlab.train(out=str(tmp_path / "bad"), **dict(TINY, model="ntn"))


def test_lstm_baseline_is_one_flag(tmp_path):
    s = rnnlab.train(out=str(tmp_path / "run"), **dict(TINY, model="lstm"))
    assert s["run_dir"].endswith("run") and 0 <= s["test"]["per_bit_error"] <= 1
    run = rnnlab.tasks.recipe.load_run(tmp_path / "run")
    assert not hasattr(run.model, "ntm") and run.model.rnn.hidden_size == 8


def test_command_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--task", "sequence-copy", "--max-length", "3", "--train-sequences", "32",
                 "--valid-sequences", "8", "--test-sequences", "8", "--hidden-size", "8",
                 "--memory-size", "8", "--memory-width", "4", "--batch-size", "8", "--epochs", "1",
                 "--threads", "1", "--no-progress", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json", "--lengths", "4", "7", "--sequences", "5"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"per_bit_error_4", "per_bit_error_7", "cost_7"} <= set(result)
    (tmp_path / "in.txt").write_text("10110010 01100001 11110000\n")
    assert main(["predict", str(run), "--input", str(tmp_path / "in.txt")]) == 0
    words = capsys.readouterr().out.split()
    assert len(words) == 3 and all(len(w) == 8 and set(w) <= {"0", "1"} for w in words)
    assert main(["evaluate", str(run), "--data", str(tmp_path / "in.txt")]) == 2
    assert "reads no --data" in capsys.readouterr().err
