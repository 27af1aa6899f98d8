"""``rnnlab bench`` and the command line: measurements come out, mistakes give one line."""
import subprocess
import sys

import pytest

import rnnlab
from rnnlab.bench import CONFIGS, format_table, run_bench
from rnnlab.cli import main


def test_bench_measures_every_engine_of_the_chosen_cells():
    rows = run_bench(["small"], steps=3, repeats=1, configs=["lstm", "gru reset_after=False"])
    got = {(r["name"], r["engine"]) for r in rows}
    assert {("lstm", "native"), ("lstm", "compiled"), ("lstm", "bptt"), ("lstm", "loop"),
            ("lstm", "auto"), ("gru reset_after=False", "compiled"), ("gru reset_after=False", "bptt"),
            ("torch.nn.LSTM", "torch")} <= got
    assert ("gru reset_after=False", "native") not in got  # no torch kernel: not measured
    for r in rows:
        assert r["tokens_per_s"] > 0 and r["peak_bytes"] > 0
    by = {(r["name"], r["engine"]): r for r in rows}
    assert by[("lstm", "auto")]["ran"] == "compiled"  # on CPU wherever it is built
    lstm = by[("lstm", "bptt")]
    assert abs(lstm["vs_loop"] - by[("lstm", "loop")]["seconds"] / lstm["seconds"]) < 1e-9
    assert "| lstm | bptt |" in format_table(rows)


def test_every_bench_configuration_builds():
    for c in CONFIGS:
        layer = c.layer(4, 8, **c.options)
        assert isinstance(layer, rnnlab.RecurrentLayer)


def test_bad_flags_give_one_line_and_exit_2(capsys):
    assert main(["bench", "--sizes", "huge"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--sizes takes small, medium, large; got huge" in err
    assert main(["bench", "--cells", "lstmm"]) == 2
    assert "got 'lstmm'" in capsys.readouterr().err


@pytest.mark.slow
def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "rnnlab", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"rnnlab {rnnlab.__version__}"
