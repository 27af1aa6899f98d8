"""``auto`` by measurement (rnnlab/engines/autotune.py): the fastest candidate is chosen, the
choice is cached in memory and on disk per machine and torch version, the trial leaves torch's
random state, the gradients and the layer as they were, ``engine=`` still forces an engine, and
``auto`` never builds the compiled engine in the foreground while torch's kernel can run."""
import json
import os
import time

import pytest
import torch

import rnnlab
from rnnlab.engines import autotune
from rnnlab.engines import compiled as compiled_engine
from rnnlab.layers import recurrent_layer


@pytest.fixture(autouse=True)
def measuring(monkeypatch, tmp_path):
    """Measurement on (the suite runs the rules), an empty cache of this test's own, a machine
    taken as quiet, and the compiled engine out of the candidates (each test that wants it says
    so)."""
    monkeypatch.setenv("RNNLAB_AUTOTUNE", "1")
    monkeypatch.setattr(autotune, "machine_busy", lambda: False)
    monkeypatch.setattr(autotune, "cache_root", lambda: str(tmp_path))  # (the compiled engine's stays)
    monkeypatch.setattr(autotune, "_compiled_off", lambda: True)  # (the compiled module untouched)
    autotune.clear_cache()
    yield
    autotune.clear_cache()


def fake_trial(seconds, calls=None):
    def trial(layer, x, lengths, return_states, engines, clock=None):
        if calls is not None:
            calls.append(tuple(engines))
        return {e: seconds[e] for e in engines}, True
    return trial


@pytest.mark.parametrize("slow", ["native", "bptt"])
def test_auto_runs_the_candidate_the_trial_finds_fastest(monkeypatch, slow):
    seconds = {"native": 1.0, "bptt": 1.0, slow: 3.0}
    monkeypatch.setattr(autotune, "trial", fake_trial(seconds))
    lstm = rnnlab.LSTM(3, 4)
    lstm(torch.randn(5, 2, 3))
    assert lstm.last_engine == ("bptt" if slow == "native" else "native")


def test_the_real_trial_sees_an_engine_made_slow(monkeypatch):
    """torch's kernel slowed by 50 ms a call: the timed trial must not pick it; unslowed, the
    native kernel is the faster at this size (tens of microseconds against bptt's steps)."""
    run_native = recurrent_layer.run_native

    def slow_native(*args):
        time.sleep(0.05)
        return run_native(*args)

    monkeypatch.setattr(recurrent_layer, "run_native", slow_native)
    lstm = rnnlab.LSTM(3, 4)
    lstm(torch.randn(8, 2, 3))
    assert lstm.last_engine in ("bptt", "compiled")  # anything but the slowed kernel
    seconds, _ = autotune.trial(lstm, torch.randn(20, 2, 3), None, False, ["native", "bptt"])
    assert seconds["native"] > 0.05 and seconds["native"] > 2 * seconds["bptt"]  # (screened at 16 steps)


@pytest.mark.parametrize("steady, busy", [(False, False), (True, True)])
def test_a_disturbed_trial_is_provisional_and_measured_again(monkeypatch, steady, busy):
    """A disturbed trial is not written to disk and decides for RETRY_AFTER seconds; then the
    class is measured again (a quiet trial's verdict replaces it), at most TRIALS times."""
    calls, now = [], [100.0]
    seconds = {"native": 2.0, "bptt": 1.0}
    trial = fake_trial(seconds, calls)
    quiet = []
    monkeypatch.setattr(autotune, "trial", lambda *args: (trial(*args)[0], steady or bool(quiet)))
    monkeypatch.setattr(autotune, "machine_busy", lambda: busy and not quiet)
    monkeypatch.setattr(autotune.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(recurrent_layer.time, "monotonic", lambda: now[0])
    x = torch.randn(5, 2, 3)
    lstm = rnnlab.LSTM(3, 4)
    lstm(x), rnnlab.LSTM(3, 4)(x)
    assert lstm.last_engine == "bptt" and len(calls) == 1
    assert not os.path.exists(autotune.cache_path())
    now[0] += autotune.RETRY_AFTER + 1                    # expired: measured again, still disturbed
    seconds.update(native=0.5)
    lstm(x), lstm(x)
    assert lstm.last_engine == "native" and len(calls) == 2
    now[0] += autotune.RETRY_AFTER + 1                    # the last trial (TRIALS = 3) is final
    seconds.update(native=3.0)
    lstm(x)
    now[0] += 10 * autotune.RETRY_AFTER
    lstm(x)
    assert lstm.last_engine == "bptt" and len(calls) == autotune.TRIALS == 3
    assert not os.path.exists(autotune.cache_path())
    autotune.clear_cache()                                # a quiet trial is final and kept on disk
    quiet.append(True)
    lstm.engine = "auto"                                  # (a new key for the layer's own cache)
    lstm(x)
    now[0] += 10 * autotune.RETRY_AFTER
    lstm(x)
    assert len(calls) == 4 and os.path.exists(autotune.cache_path())


def test_torch_kernel_gives_way_only_to_a_clearly_faster_engine():
    assert autotune.fastest({"native": 1.02, "compiled": 1.0, "bptt": 2.0}) == "native"
    assert autotune.fastest({"native": 1.05, "compiled": 1.0, "bptt": 2.0}) == "compiled"
    assert autotune.fastest({"compiled": 1.02, "bptt": 1.0}) == "bptt"


def test_one_candidate_needs_no_trial(monkeypatch):
    monkeypatch.setattr(autotune, "trial", None)  # calling it would fail
    gru = rnnlab.GRU(3, 4, reset_after=False)  # no torch kernel, compiled off: bptt alone
    gru(torch.randn(5, 2, 3))
    assert gru.last_engine == "bptt"
    lstm = rnnlab.LSTM(3, 4)
    lstm(torch.randn(5, 2, 3), return_states=True)  # torch's kernel keeps no states
    assert lstm.last_engine == "bptt"


def test_engine_argument_forces_an_engine(monkeypatch):
    monkeypatch.setattr(autotune, "trial", None)
    x = torch.randn(5, 2, 3)
    for engine in ("native", "bptt", "loop"):
        lstm = rnnlab.LSTM(3, 4, engine=engine)
        lstm(x)
        assert lstm.last_engine == engine
    lstm.engine = "auto"
    monkeypatch.setattr(autotune, "trial", fake_trial({"native": 2.0, "bptt": 1.0}))
    lstm(x)
    assert lstm.last_engine == "bptt"


def test_rules_when_measurement_is_off(monkeypatch):
    """RNNLAB_AUTOTUNE=0: compiled wherever it runs, else torch's kernel for the float32 LSTM on
    the CPU, else bptt."""
    monkeypatch.setenv("RNNLAB_AUTOTUNE", "0")
    monkeypatch.setattr(autotune, "trial", None)
    monkeypatch.setattr(autotune, "compiled_layer_unsupported", lambda layer, x=None: "not here")
    lstm, gru = rnnlab.LSTM(3, 4), rnnlab.GRU(3, 4)
    x = torch.randn(5, 2, 3)
    lstm(x), gru(x)
    assert (lstm.last_engine, gru.last_engine) == ("native", "bptt")
    monkeypatch.setattr(autotune, "compiled_layer_unsupported", lambda layer, x=None: None)
    monkeypatch.setattr(autotune, "note_compiled_runs", lambda: None)
    monkeypatch.setattr(autotune, "_compiled_off", lambda: False)
    lstm.engine = gru.engine = "auto"  # (a new version of the layer: chosen again)
    lstm(x), gru(x)
    assert (lstm.last_engine, gru.last_engine) == ("compiled", "compiled")


def test_cache_round_trips_on_disk_keyed_by_machine_and_torch(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(autotune, "trial", fake_trial({"native": 2.0, "bptt": 1.0}, calls))
    x = torch.randn(5, 2, 3)
    rnnlab.LSTM(3, 4)(x)
    assert calls == [("native", "bptt")]
    path = autotune.cache_path()
    assert path.startswith(str(tmp_path)) and os.path.exists(path)
    with open(path) as f:
        data = json.load(f)
    assert data["machine"] == autotune.machine_key()
    assert data["machine"]["torch"] == torch.__version__ and data["machine"]["cpu"]
    (key, entry), = data["classes"].items()
    assert entry["engine"] == "bptt" and entry["seconds"] == {"native": 2.0, "bptt": 1.0}
    assert "LSTM(3, 4" in key and "B=2" in key and "grad=True" in key

    autotune.clear_cache()  # a new process: the disk decides, no trial
    lstm = rnnlab.LSTM(3, 4)
    lstm(x)
    assert lstm.last_engine == "bptt" and len(calls) == 1

    autotune.clear_cache()  # another torch: another file, measured anew
    monkeypatch.setattr(autotune, "machine_key", lambda: {"cpu": "other", "capability": "X", "torch": "0.0"})
    assert autotune.cache_path() != path
    rnnlab.LSTM(3, 4)(x)
    assert len(calls) == 2 and os.path.exists(autotune.cache_path())

    autotune.clear_cache(disk=True)
    assert not os.path.exists(autotune.cache_path()) and os.path.exists(path)


def test_a_close_call_is_measured_again_and_the_mean_decides(monkeypatch):
    """A verdict whose runner-up is within CLOSE of the winner is measured again by the next
    processes, up to CLOSE_TRIALS trials; the mean of each engine's timings decides, for good."""
    trials = iter([{"native": 1.10, "bptt": 1.00},   # bptt by a little: a close call
                   {"native": 0.80, "bptt": 1.00},   # the mean: native 0.95, bptt 1.00
                   {"native": 1.00, "bptt": 1.00}])  # native 0.967, bptt 1.00: settled
    calls = []
    monkeypatch.setattr(autotune, "trial", lambda layer, x, lengths, rs, engines, clock=None:
                        (calls.append(1) or next(trials), True))
    x = torch.randn(5, 2, 3)
    ran = []
    for _ in range(5):  # five processes
        autotune.clear_cache()
        lstm = rnnlab.LSTM(3, 4)
        lstm(x)
        ran.append(lstm.last_engine)
    assert ran == ["bptt", "native", "native", "native", "native"] and len(calls) == 3
    with open(autotune.cache_path()) as f:
        (entry,) = json.load(f)["classes"].values()
    assert entry["trials"] == 3 and entry["seconds"]["native"] == pytest.approx(2.9 / 3)


def test_a_file_of_another_machine_is_not_read(monkeypatch):
    calls = []
    monkeypatch.setattr(autotune, "trial", fake_trial({"native": 2.0, "bptt": 1.0}, calls))
    x = torch.randn(5, 2, 3)
    rnnlab.LSTM(3, 4)(x)
    path = autotune.cache_path()
    with open(path) as f:
        data = json.load(f)
    data["machine"]["cpu"] = "another processor"
    with open(path, "w") as f:
        json.dump(data, f)
    autotune.clear_cache()
    rnnlab.LSTM(3, 4)(x)
    assert len(calls) == 2


def test_shape_classes(monkeypatch):
    """T shares a class within its power of two (and above 128); B, lengths, gradients,
    evaluation mode and torch's deterministic mode make classes of their own."""
    calls = []
    monkeypatch.setattr(autotune, "trial", fake_trial({"native": 2.0, "bptt": 1.0}, calls))
    lstm = rnnlab.LSTM(3, 4)
    for T in (5, 6, 8, 200, 300):
        lstm(torch.randn(T, 2, 3))
    assert len(calls) == 2  # T <= 8 and T > 128
    lstm(torch.randn(5, 3, 3))
    lstm(torch.randn(5, 2, 3), lengths=torch.tensor([5, 3]))
    with torch.no_grad():
        lstm(torch.randn(5, 2, 3))
    lstm.eval()
    lstm(torch.randn(5, 2, 3))
    assert len(calls) == 6
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)  # (the products' kernel fixed)
    try:
        lstm(torch.randn(5, 2, 3))
    finally:
        torch.use_deterministic_algorithms(before, warn_only=True)
    assert len(calls) == 7
    assert autotune.t_bucket(1) == 1 and autotune.t_bucket(33) == 64 and autotune.t_bucket(10**4) == 256


def test_an_entry_measured_without_a_candidate_is_measured_again(monkeypatch):
    calls = []
    monkeypatch.setattr(autotune, "trial", fake_trial({"native": 2.0, "bptt": 1.0, "compiled": 0.5}, calls))
    x = torch.randn(5, 2, 3)
    rnnlab.LSTM(3, 4)(x)
    autotune.clear_cache()
    monkeypatch.setattr(autotune, "candidates", lambda layer, x, rs=False: ["native", "compiled", "bptt"])
    lstm = rnnlab.LSTM(3, 4)
    lstm(x)
    assert calls == [("native", "bptt"), ("native", "compiled", "bptt")]
    assert lstm.last_engine == "compiled"


def test_trial_leaves_rng_grads_and_layer_as_they_were():
    torch.manual_seed(3)
    lstm = rnnlab.LSTM(3, 4, num_layers=2, dropout=0.5)  # dropout draws from torch's generator
    x = torch.randn(6, 2, 3, requires_grad=True)
    lstm(x)[0].sum().backward()
    grads = {n: p.grad.clone() for n, p in lstm.named_parameters()}
    params = {n: p.detach().clone() for n, p in lstm.named_parameters()}
    rng, engine, version = torch.get_rng_state(), lstm.last_engine, lstm.__dict__["_version"]
    x_grad = x.grad.clone()
    seconds, steady = autotune.trial(lstm, x, None, False, ["native", "bptt"])
    assert set(seconds) == {"native", "bptt"} and all(s > 0 for s in seconds.values())
    assert torch.equal(torch.get_rng_state(), rng)
    for n, p in lstm.named_parameters():
        assert torch.equal(p.grad, grads[n]) and torch.equal(p.detach(), params[n]), n
    assert lstm.training and lstm.last_engine == engine and lstm.__dict__["_version"] == version
    assert torch.equal(x.grad, x_grad)
    lstm.eval()
    with torch.no_grad():
        autotune.trial(lstm, x, torch.tensor([6, 2]), False, ["native", "bptt"])
    assert not lstm.training and torch.equal(torch.get_rng_state(), rng)


def test_seeded_runs_repeat_bit_for_bit_across_a_trial():
    """A first call that measures and one that reads the cache give the same numbers: the
    trial takes nothing from torch's generator."""
    def run():
        torch.manual_seed(0)
        lstm = rnnlab.LSTM(3, 4, num_layers=2, dropout=0.5)
        out = lstm(torch.randn(6, 2, 3))[0]
        return out, torch.rand(3), lstm.last_engine

    first, second = run(), run()
    assert first[2] == second[2]
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_no_foreground_build_while_torch_kernel_runs(monkeypatch, tmp_path):
    """Compiled engine not known built: an LSTM (torch has the kernel) is measured without it and
    its build starts in the background; a cell only the compiled engine speeds up waits for it,
    one of a class the engine lacks does not."""
    monkeypatch.setattr(autotune, "_compiled_off", lambda: False)
    monkeypatch.setattr(autotune, "_compiled", None)
    monkeypatch.setattr(autotune, "_builder", None)
    started = []
    monkeypatch.setattr(autotune, "_start_build", lambda: started.append(1))

    def unsupported(layer, x=None):
        if isinstance(layer, rnnlab.LSTM):
            raise AssertionError("the compiled engine was asked for, so built, in the foreground")
        return None

    monkeypatch.setattr(autotune, "compiled_layer_unsupported", unsupported)
    monkeypatch.setattr(autotune, "compiled_unsupported",
                        lambda cell: "no such class" if "Skip" in type(cell).__name__ else None)
    x = torch.randn(5, 2, 3)
    assert autotune.candidates(rnnlab.LSTM(3, 4), x) == ["native", "bptt"]
    assert started == [1]
    assert autotune.candidates(rnnlab.GRU(3, 4, reset_after=False), x) == ["compiled", "bptt"]
    assert autotune.candidates(rnnlab.GRU(3, 4, reset_after=False, skip_steps=2), x) == ["bptt"]
    os.makedirs(os.path.dirname(autotune.compiled_marker()))
    open(autotune.compiled_marker(), "w").close()  # built (by the background build, say)
    monkeypatch.setattr(autotune, "compiled_available", lambda: True)
    monkeypatch.setattr(autotune, "compiled_layer_unsupported", lambda layer, x=None: None)
    assert autotune.candidates(rnnlab.LSTM(3, 4), x) == ["native", "compiled", "bptt"]
    assert autotune.compiled_marker().startswith(str(tmp_path))


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="no idle scheduling class on this system")
def test_background_build_is_at_lowest_priority_before_it_imports_torch(monkeypatch):
    """The build process lowers itself before its first import: torch's import at normal
    priority (seconds of a processor) crowded the trial running meanwhile, which then ranked
    bptt over torch's kernel (0.40 s against 0.84 s, where alone they took 0.17 s and 0.08 s)."""
    import subprocess
    import sys
    launched = []
    monkeypatch.setattr(autotune, "_builder", None)
    monkeypatch.setattr(subprocess, "Popen", lambda argv, **kw: launched.append(argv))
    autotune._start_build()
    monkeypatch.undo()
    (code,) = [a for a in launched[0] if "_build_compiled_main" in a]
    before_imports = code[:code.index("import rnnlab")]  # what runs before the first import of rnnlab
    probe = "import sys\nprint(os.nice(0), os.sched_getscheduler(0) == os.SCHED_IDLE, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", before_imports + probe], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["19", "True", "False"]


def test_a_failed_background_build_is_not_started_again_for_a_day(monkeypatch, tmp_path):
    """Without a compiler every run started a build that failed, and said each time that it was
    building "once per machine": the failure is marked with its reason, later processes start no
    build for a day, then try again."""
    monkeypatch.setattr(autotune, "_compiled_off", lambda: False)
    monkeypatch.setattr(autotune, "_builder", None)
    monkeypatch.setattr(autotune, "compiled_available", lambda: False)
    from rnnlab.engines import compiled
    monkeypatch.setattr(compiled, "compiled_broken", lambda: "its C++ could not be built (no compiler)")
    with pytest.raises(SystemExit) as exit_:
        autotune._build_compiled_main()  # (the background process's work)
    assert exit_.value.code == 1
    assert autotune.failed_build() == "its C++ could not be built (no compiler)"
    started, said = [], []
    monkeypatch.setattr(autotune, "_start_build", lambda: started.append(1))
    monkeypatch.setattr(autotune.log, "warning", lambda *a: said.append(a[0] % a[1:]))
    for _ in range(2):  # the next processes: no build; the first of them says why, once
        monkeypatch.setattr(autotune, "_compiled", None)
        assert autotune.compiled_ready() is False and started == []
    assert len(said) == 1 and "could not be built (its C++ could not be built (no compiler))" in said[0]
    day_ago = time.time() - autotune.BUILD_RETRY - 60
    os.utime(autotune.failed_marker(), (day_ago, day_ago))
    monkeypatch.setattr(autotune, "_compiled", None)
    assert autotune.compiled_ready() is False and started == [1]  # a day later: tried again
    autotune.clear_cache(disk=True)
    assert not os.path.exists(autotune.failed_marker())


def test_bench_auto_rows(monkeypatch):
    from rnnlab import bench
    from rnnlab.bench import GRID, format_auto_table, run_auto_bench
    monkeypatch.setattr(bench, "AUTO_ENGINES", ("native", "bptt"))  # no build of the compiled engine
    monkeypatch.setitem(GRID, "small", (2, 3, 4))
    monkeypatch.setitem(GRID, "lengths", (2, 3, 4))
    rows = run_auto_bench(["small", "lengths"], steps=4, repeats=1, cells=["lstm", "gru"])
    autos = [r for r in rows if r["engine"] == "auto"]
    assert len(autos) == 4 and all(r["vs_fastest_engine"] > 0 and r["vs_torch"] > 0 for r in autos)
    assert {r["engine"] for r in rows} == {"auto", "native", "bptt", "torch.nn"}
    table = format_auto_table(rows)
    assert table.count("\n") == 5 and "PackedSequence" in table


@pytest.mark.parametrize("slow", ["native", "bptt"])
def test_compiled_model_runs_the_engine_its_trial_finds_fastest(monkeypatch, slow):
    """Under torch.compile ``auto`` runs the engine a trial finds fastest (one trial per trace):
    torch's kernel where it is the faster, ``bptt`` where that is; outputs and gradients equal
    eager's. A training call's trial is eager calls' (timed eagerly, one verdict for both); an
    evaluation call's times the compiled engine through its operators, as the graph runs them,
    and is cached apart."""
    calls, natives, operators = [], [], []
    trial = fake_trial({"native": 1.0, "bptt": 1.0, slow: 3.0}, calls)
    monkeypatch.setattr(autotune, "trial",
                        lambda *a: operators.append(compiled_engine._OPERATORS.get()) or trial(*a))
    run_native = recurrent_layer.run_native
    monkeypatch.setattr(recurrent_layer, "run_native",
                        torch.compiler.disable(lambda *a: natives.append(1) or run_native(*a)))
    torch._dynamo.reset()
    torch.manual_seed(0)
    lstm = rnnlab.LSTM(3, 4)
    compiled = torch.compile(lstm)
    x = torch.randn(5, 2, 3)
    got = compiled(x)[0]
    assert len(natives) == (slow == "bptt")
    got.sum().backward()
    g_got = [p.grad.clone() for p in lstm.parameters()]
    lstm.zero_grad()
    want = lstm(x)[0]
    want.sum().backward()
    fast = "bptt" if slow == "native" else "native"
    assert lstm.last_engine == fast and operators == [False]  # (the traced call's trial, which the eager call reuses)
    torch.testing.assert_close(got, want)
    for p, g in zip(lstm.parameters(), g_got):
        torch.testing.assert_close(p.grad, g)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x)[0], lstm(x)[0])
    assert operators == [False, True, False]  # (evaluation: the traced call's trial, then the eager one's)


def test_fullgraph_keeps_auto_to_the_engines_in_the_graph(compiled_runs, monkeypatch):
    """``torch.compile(model, fullgraph=True)``: where the trial for the graph would pick torch's
    kernel in training (a graph break, an error under fullgraph), ``auto`` runs the compiled
    engine's operators, the one engine that stays in the graph there; without gradients torch's
    kernel stays in the graph and may run. Gradients equal eager's."""
    if not compiled_runs:
        pytest.skip("the compiled engine cannot run here")
    monkeypatch.setattr(autotune, "_compiled_off", lambda: False)
    monkeypatch.setattr(autotune, "_compiled", True)  # (loaded: a candidate at once)
    calls = []
    monkeypatch.setattr(autotune, "trial", fake_trial({"native": 1.0, "compiled": 2.0, "bptt": 3.0}, calls))
    torch._dynamo.reset()
    torch.manual_seed(0)
    lstm = rnnlab.LSTM(3, 4)
    compiled = torch.compile(lstm, fullgraph=True)
    x = torch.randn(5, 2, 3)
    compiled(x)[0].sum().backward()
    g_got = [p.grad.clone() for p in lstm.parameters()]
    assert calls == []  # (one engine left: nothing to measure)
    with torch.no_grad():
        got = compiled(x)[0]
        assert calls == [("native", "compiled")]  # (evaluation: both stay in the graph)
        torch.testing.assert_close(got, lstm(x)[0])
    lstm.zero_grad()
    lstm(x)[0].sum().backward()
    for p, g in zip(lstm.parameters(), g_got):
        torch.testing.assert_close(p.grad, g)


def test_the_compiled_engine_as_its_operators_equals_eager(compiled_runs, monkeypatch):
    """What ``auto``'s trial for a traced call runs (``as_operators``): the custom operators a
    compiled graph runs, not the eager autograd function; the same outputs and gradients."""
    if not compiled_runs:
        pytest.skip("the compiled engine cannot run here")
    torch.manual_seed(0)
    lstm = rnnlab.LSTM(3, 4, layer_norm=True, engine="compiled").double()
    x = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)
    want = torch.autograd.grad(lstm(x)[0].square().sum(), [x, *lstm.parameters()])

    def refused(*args):
        raise AssertionError("the eager autograd function ran")
    monkeypatch.setattr(compiled_engine.CompiledFunction, "apply", refused)
    with compiled_engine.as_operators():
        got = torch.autograd.grad(lstm(x)[0].square().sum(), [x, *lstm.parameters()])
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10)


def test_a_failed_build_is_told_by_its_first_error():
    """The reason a failed build gives is the report's telling line, not ninja's last one."""
    report = ("Error building extension 'x': [1/2] c++ -c a.cpp -o a.o\na.cpp:3:1: error: expected ';'\n"
              "a.cpp:9:1: error: later\nFAILED: a.o\nninja: build stopped: subcommand failed.\n")
    assert compiled_engine._first_error(report) == "a.cpp:3:1: error: expected ';'"
    assert compiled_engine._first_error("[1/5] x\n/bin/sh: 1: c++: not found\nninja: build stopped.") == "/bin/sh: 1: c++: not found"
    assert compiled_engine._first_error("ImportError: undefined symbol\n") == "ImportError: undefined symbol"
