"""rnnlab.compiler: torch.compile's markers without dynamo's import. They mark as torch's do
(a disabled function runs outside the graph, eagerly; a constant's marker is torch's own), and
``import rnnlab`` does not import dynamo.
"""
import subprocess
import sys

import torch

from rnnlab import compiler


def test_a_disabled_function_runs_eagerly_under_torch_compile():
    seen = []

    @compiler.disable
    def probe(x):
        seen.append(torch.compiler.is_compiling())
        return x + 1

    def f(x):
        return probe(x * 2) * 3

    x = torch.arange(4.0)
    torch._dynamo.reset()
    assert torch.equal(torch.compile(f)(x), f(x))
    assert seen == [False, False]  # (compiled, then eager: neither traced)


def test_the_constant_marker_is_torchs():
    def a():
        return 1

    def b():
        return 1

    torch.compiler.assume_constant_result(a)
    assert compiler.assume_constant_result(b) is b
    assert vars(b) == vars(a) and vars(a)


def test_importing_rnnlab_leaves_dynamo_unimported():
    code = "import sys, rnnlab; print('torch._dynamo' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_fullgraph_is_known_while_tracing():
    """Asked inside a trace (a constant-result function), ``fullgraph()`` says whether the trace
    was asked for one graph; outside a trace, False."""
    seen = []

    @compiler.assume_constant_result
    def probe():
        seen.append(compiler.fullgraph())
        return 1

    def f(x):
        return x * probe()

    x = torch.randn(3)
    for one_graph in (True, False):
        torch._dynamo.reset()
        torch.compile(f, fullgraph=one_graph)(x)
    assert seen == [True, False] and compiler.fullgraph() is False
