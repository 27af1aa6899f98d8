"""The ``compiled`` engine's per-step products through oneDNN (``csrc/onednn.h``) give what the
BLAS gives: every cell, with every regularizer, one layer and two bidirectional layers with
lengths, float32 values and gradients within float32 rounding of the same engine on its BLAS
alone (rounding as large as that between the BLAS route and ``bptt``); the route is taken
(torch's profiler sees oneDNN's operator) where it is forced, never in deterministic mode or
for float64; choosing it draws nothing from torch's generator.
"""
import pytest
import torch

import rnnlab
from rnnlab import linalg
from rnnlab.engines import compiled
from engine_check import LENGTHS, make_inputs
from test_compiled_regularizers import CELLS, OUTPUT, REGULARIZERS, seeded

pytestmark = pytest.mark.requires_compiled  # skipped where the C++ cannot be built (conftest.py)

LINEAR = "mkldnn::_linear_pointwise"


@pytest.fixture
def onednn():
    """set(how): the route's policy for the test (measure, always, never), measure after."""
    if not linalg.onednn_available():
        pytest.skip("torch's oneDNN linear kernel is not available here")
    compiled._ops().set_onednn("measure")
    yield compiled._ops().set_onednn
    compiled._ops().set_onednn("measure")


def linear_calls(layer, x, hx, lengths):
    """How many times a training call of ``layer`` ran oneDNN's linear operator."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        out, h_n = layer(x, hx, lengths=lengths)
        torch.autograd.grad(out.sum(), [x, *layer.parameters()])
    return sum(e.count for e in prof.key_averages() if e.key == LINEAR)


def assert_rounding_apart(blas, onednn, bptt):
    """The two routes differ by float32 rounding: no more than twice what the BLAS route and
    bptt differ by (layer norm's divisions make some configurations' rounding large), and
    at least 1e-5 of the tensor's largest entry allowed."""
    scale = float(bptt.detach().abs().max())
    allowed = 2 * float((blas - bptt).abs().max()) + 1e-5 * max(1.0, scale)
    assert float((onednn - blas).abs().max()) <= allowed


@pytest.mark.parametrize("cls,options", CELLS, ids=[f"{c.__name__}-{o}" for c, o in CELLS])
@pytest.mark.parametrize("reg", ["all", "masks"])
def test_onednn_route_equals_blas_and_bptt(onednn, cls, options, reg):
    if cls in OUTPUT and reg == "all":
        reg = "masks"  # (no layer norm of the output cells in this engine)
    torch.manual_seed(3)
    args = (6, 8, 5) if cls in OUTPUT else (6, 8)
    layer = cls(*args, num_layers=2, bidirectional=True, **options, **REGULARIZERS[reg])
    x, hx = make_inputs(layer, T=9, B=4, dtype=torch.float32)
    lengths = LENGTHS.new_tensor([9, 3, 5, 8])
    results = {}
    for how in ("never", "always"):
        onednn(how)
        results[how] = seeded(layer, "compiled", x, hx, lengths)
    results["bptt"] = seeded(layer, "bptt", x, hx, lengths)
    (v0, g0), (v1, g1), (v2, g2) = results["never"], results["always"], results["bptt"]
    for a, b, c in zip(v0 + list(g0), v1 + list(g1), v2 + list(g2)):
        assert_rounding_apart(a.detach(), b.detach(), c.detach())
    onednn("always")
    layer.engine = "compiled"
    assert linear_calls(layer, x, hx, lengths) > 0


@pytest.mark.parametrize("options", [{"peephole": "full"}, {"peephole": "full", "peephole_candidate": True}])
@pytest.mark.parametrize("reg", ["all", "masks"])
def test_full_peepholes_stacked_product(onednn, options, reg):
    """From 16 steps the full peepholes' products of C_{t-1} are one product of the stacked
    weights [W_ci; W_cf; W_cc], a route of its own."""
    torch.manual_seed(4)
    layer = rnnlab.LSTM(6, 8, num_layers=2, bidirectional=True, **options, **REGULARIZERS[reg])
    x, hx = make_inputs(layer, T=18, B=4, dtype=torch.float32)
    lengths = torch.tensor([18, 3, 16, 9])
    results = {}
    for how in ("never", "always"):
        onednn(how)
        results[how] = seeded(layer, "compiled", x, hx, lengths)
    results["bptt"] = seeded(layer, "bptt", x, hx, lengths)
    (v0, g0), (v1, g1), (v2, g2) = results["never"], results["always"], results["bptt"]
    for a, b, c in zip(v0 + list(g0), v1 + list(g1), v2 + list(g2)):
        assert_rounding_apart(a.detach(), b.detach(), c.detach())


@pytest.mark.parametrize("cls", [rnnlab.LSTM, rnnlab.GRU])
def test_route_not_taken_where_it_must_not_be(onednn, cls):
    """Forced on: still never in deterministic mode (the BLAS fixed, bits reproducible) nor for
    float64 (oneDNN's linear has none); forced off: never."""
    torch.manual_seed(0)
    layer = cls(6, 8, engine="compiled")
    x, hx = make_inputs(layer, T=9, B=4, dtype=torch.float32)
    onednn("always")
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        assert linear_calls(layer, x, hx, None) == 0
    finally:
        torch.use_deterministic_algorithms(before, warn_only=True)
    layer64 = cls(6, 8, engine="compiled", dtype=torch.float64)
    x64, hx64 = make_inputs(layer64, T=9, B=4)
    assert linear_calls(layer64, x64, hx64, None) == 0
    onednn("never")
    assert linear_calls(layer, x, hx, None) == 0
    with pytest.raises(ValueError, match="measure, always or never"):
        onednn("sometimes")


def test_choosing_the_route_leaves_torchs_generator_alone(onednn):
    """The route's check and its timings draw nothing from torch's generator, which a seeded
    run's masks come from (a first call in a process would otherwise draw other masks)."""
    layer = rnnlab.LSTM(7, 37, engine="compiled")  # a shape no other test times
    linalg.onednn_available.cache_clear()
    state = torch.get_rng_state()
    assert linalg.onednn_available()
    with torch.no_grad():
        layer(torch.zeros(20, 5, 7))
    assert torch.equal(torch.get_rng_state(), state)
