"""The ``compiled`` engine's per-step products through its own packed kernel (``csrc/panels.h``)
give what the BLAS gives: every cell, with every regularizer, two bidirectional layers with
lengths, float32 values and gradients within float32 rounding of the same engine on the BLAS
(no more apart than the BLAS route and ``bptt``); in deterministic mode by no timing; never for
float64; choosing it draws nothing from torch's generator."""
import pytest
import torch

import rnnlab
from rnnlab.engines import compiled
from engine_check import make_inputs
from test_compiled_onednn import assert_rounding_apart
from test_compiled_regularizers import CELLS, OUTPUT, REGULARIZERS, seeded

pytestmark = pytest.mark.requires_compiled  # skipped where the C++ cannot be built (conftest.py)


@pytest.fixture
def panels():
    """set(how): the kernel's policy for the test (measure, always, never), measure after; the
    oneDNN route off, so that "never" is the BLAS."""
    ops = compiled._ops()
    ops.set_onednn("never")
    yield ops.set_panels
    ops.set_panels("measure")
    ops.set_onednn("measure")


#: the cells, and full peepholes with all three products of C_{t-1} (stacked into one from 16 steps)
PANEL_CELLS = CELLS + [(rnnlab.LSTM, {"peephole": "full", "peephole_candidate": True})]


@pytest.mark.parametrize("cls,options", PANEL_CELLS, ids=[f"{c.__name__}-{o}" for c, o in PANEL_CELLS])
@pytest.mark.parametrize("reg", ["all", "masks"])
def test_packed_kernel_equals_blas_and_bptt(panels, cls, options, reg):
    if cls in OUTPUT and reg == "all":
        reg = "masks"  # (no layer norm of the output cells in this engine)
    torch.manual_seed(3)
    args = (6, 37, 5) if cls in OUTPUT else (6, 37)  # (H = 37: a last panel part empty)
    layer = cls(*args, num_layers=2, bidirectional=True, **options, **REGULARIZERS[reg])
    x, hx = make_inputs(layer, T=18, B=13, dtype=torch.float32)  # (B = 13: blocks of unequal rows)
    lengths = torch.tensor([18, 3, 5, 8, 18, 1, 9, 12, 17, 2, 6, 18, 10])
    results = {}
    for how in ("never", "always"):
        panels(how)
        results[how] = seeded(layer, "compiled", x, hx, lengths)
    results["bptt"] = seeded(layer, "bptt", x, hx, lengths)
    (v0, g0), (v1, g1), (v2, g2) = results["never"], results["always"], results["bptt"]
    for a, b, c in zip(v0 + list(g0), v1 + list(g1), v2 + list(g2)):
        assert_rounding_apart(a.detach(), b.detach(), c.detach())


def packed_products(layer, x, hx):
    """How many products a seeded training call of ``layer`` ran on the packed kernel."""
    before = compiled._ops().panels_calls()
    seeded(layer, "compiled", x, hx, None)
    return compiled._ops().panels_calls() - before


@pytest.mark.parametrize("cls", [rnnlab.LSTM, rnnlab.GRU])
def test_deterministic_mode_takes_the_kernel_by_no_timing(panels, cls):
    """Deterministic mode (a seeded ``rnnlab train``): the packed kernel wherever it runs, not
    chosen by timing (it runs under "measure" as under "always", the same bits), so a run
    repeats bit for bit; "never" keeps the BLAS; float64 never takes it."""
    torch.manual_seed(0)
    layer = cls(6, 40, engine="compiled")
    x, hx = make_inputs(layer, T=20, B=9, dtype=torch.float32)
    layer64 = cls(6, 40, engine="compiled", dtype=torch.float64)
    x64, hx64 = make_inputs(layer64, T=20, B=9)
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        results, counts = {}, {}
        for how in ("measure", "always", "never"):
            panels(how)
            counts[how] = packed_products(layer, x, hx), packed_products(layer64, x64, hx64)
            results[how] = seeded(layer, "compiled", x, hx, None)
    finally:
        torch.use_deterministic_algorithms(before, warn_only=True)
    assert counts["measure"][0] == counts["always"][0] > 0 and counts["never"][0] == 0
    assert all(c[1] == 0 for c in counts.values())
    (v0, g0), (v1, g1) = results["measure"], results["always"]
    assert all(torch.equal(a, b) for a, b in zip(v0 + list(g0), v1 + list(g1)))
    with pytest.raises(ValueError, match="measure, always or never"):
        panels("sometimes")


def test_choosing_the_kernel_leaves_torchs_generator_alone(panels):
    """Its timings draw nothing from torch's generator (a seeded run's masks come from it)."""
    layer = rnnlab.LSTM(7, 41, engine="compiled")  # a shape no other test times
    state = torch.get_rng_state()
    with torch.no_grad():
        layer(torch.zeros(20, 5, 7))
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("cls,options", PANEL_CELLS, ids=[f"{c.__name__}-{o}" for c, o in PANEL_CELLS])
def test_rows_split_among_threads_equal_bptt(panels, cls, options):
    """At a size where the row loops and the packed products split among torch's two threads
    (the tests' usual sizes run on one), every regularizer on: float64 values and gradients
    equal ``bptt``'s (1e-7); float32's on the packed kernel within rounding of the BLAS's."""
    torch.manual_seed(5)
    reg = "masks" if cls in OUTPUT else "all"
    args = (6, 136, 5) if cls in OUTPUT else (6, 136)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for dtype in (torch.float64, torch.float32):
            layer = cls(*args, bidirectional=True, dtype=dtype, **options, **REGULARIZERS[reg])
            x, hx = make_inputs(layer, T=17, B=40, dtype=dtype)
            lengths = torch.randint(1, 18, (40,))
            lengths[0] = 17
            results = {"bptt": seeded(layer, "bptt", x, hx, lengths)}
            for how in ("never", "always"):
                panels(how)
                results[how] = seeded(layer, "compiled", x, hx, lengths)
            (v0, g0), (v1, g1), (v2, g2) = results["bptt"], results["never"], results["always"]
            for a, b, c in zip(v0 + list(g0), v1 + list(g1), v2 + list(g2)):
                if dtype == torch.float64:
                    torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9)
                else:
                    assert_rounding_apart(b.detach(), c.detach(), a.detach())
    finally:
        torch.set_num_threads(threads)
