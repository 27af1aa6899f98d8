"""``auto``: the fastest engine for a configuration on this machine, decided by measurement
(docs/engines.md says how, and why rules do not hold across processors).

:func:`choose_engine` takes the :func:`candidates` that compute the call; with more than one, a
short :func:`trial` on the call's shape class (:func:`class_key`) times them on a deep copy of the
layer (its parameters, gradients and torch's random state untouched) and :func:`fastest` picks,
torch's kernel keeping the call unless another is :data:`NATIVE_MARGIN` faster. Choices are
cached in memory and in ``$RNNLAB_CACHE/autotune/`` per machine, torch version and engine build; a trial that
is unsteady or ran on a busy machine is not written to disk and is measured again after
:data:`RETRY_AFTER` seconds (at most :data:`TRIALS` times in a process). The compiled engine is built in
the background (:func:`compiled_ready`) when torch's kernel can run the call meanwhile.
``RNNLAB_AUTOTUNE=0`` follows :func:`rule_choice` instead.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch

try:
    import fcntl
except ImportError:  # Windows: writes stay atomic, concurrent ones may lose an entry
    fcntl = None

from .. import compiler
from .compiled import as_operators, compiled_available, compiled_layer_unsupported, compiled_unsupported
from .native import native_is_fastest, native_unsupported
from .triton_engine import triton_unsupported

log = logging.getLogger("rnnlab")

#: the most time steps a trial runs (a call's own T up to this): engines' costs per step change
#: with T (torch's CPU LSTM slows per step as T grows, its workspace outgrowing the caches), so
#: a trial at fewer steps than the call ranks them wrongly
TRIAL_STEPS = 128
#: the largest bucket of T: every T above half of it shares this one class
MAX_BUCKET = 256
#: the screening's steps: every candidate runs this short once, and what is more than
#: :data:`DROP_RATIO` times the best is not timed at full length
SCREEN_STEPS = 16
DROP_RATIO = 1.5
#: timed rounds of the finalists after a first timing (the least timing is kept); the rounds stop
#: after the second once the finalists have taken :data:`BUDGET` seconds
REPEATS = 3
BUDGET = 1.0
#: a trial is steady, and written to the disk cache, when each finalist's two least warm timings
#: agree within this fraction; an unsteady one holds for its process only
NOISE = 0.15
#: each timing spans at least this many seconds (fast calls are repeated back to back)
MIN_TIMING = 0.005
#: another engine replaces torch's kernel only when at least this much faster (a fraction)
NATIVE_MARGIN = 0.03
#: a verdict whose runner-up is within this fraction of the winner is a close call: later
#: processes measure it again, up to :data:`CLOSE_TRIALS` trials in all, and the mean of each
#: engine's timings decides (one trial on a noisy machine can rank a close pair wrongly, and the
#: disk would keep that for good)
CLOSE = 0.15
CLOSE_TRIALS = 3
#: the file format of the disk cache; another version is ignored (and rewritten)
FORMAT = 1


# ------------------------------------------------------------------ where the cache lives
def enabled() -> bool:
    """Whether ``auto`` measures (``RNNLAB_AUTOTUNE`` is not ``0``)."""
    return os.environ.get("RNNLAB_AUTOTUNE", "1") != "0"


def cache_root() -> str:
    """``$RNNLAB_CACHE`` or ``~/.cache/rnnlab`` (the compiled engine's cache too)."""
    return os.environ.get("RNNLAB_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "rnnlab")


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux, else what :mod:`platform` says)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                  text=True, timeout=5).stdout.strip() or platform.machine()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown processor"


def machine_key() -> Dict[str, str]:
    """What the disk cache is keyed by: the processor, torch's CPU capability, torch's version,
    and the compiled engine's sources (a changed engine is measured again, not judged by the
    timings of the code it replaced)."""
    return {"cpu": cpu_model(), "capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__, "engines": os.path.basename(compiled_marker()).rsplit("-", 1)[-1]}


def cache_path() -> str:
    """The JSON file of this machine and torch version."""
    key = machine_key()
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    slug = "".join(ch if ch.isalnum() else "-" for ch in key["capability"].lower())
    return os.path.join(cache_root(), "autotune", f"engines-{slug}-{digest}.json")


#: shape-class key -> engine, this process's choices
_memory: Dict[str, str] = {}


def clear_cache(disk: bool = False) -> None:
    """Forget the choices made in this process; with ``disk``, delete this machine's cache file (and
    the mark of a failed build of the compiled engine)."""
    _memory.clear()
    _retry.clear()
    if disk:
        for path in (cache_path(), failed_marker()):
            try:
                os.remove(path)
            except FileNotFoundError:
                pass


def _read(path: str) -> Dict[str, dict]:
    """The entries of the cache file, {} if it is missing, unreadable or of another machine."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("machine") != machine_key():
        return {}
    entries = data.get("classes")
    return entries if isinstance(entries, dict) else {}


def load_entry(key: str) -> Optional[dict]:
    """The disk cache's entry for a shape class, or None."""
    entry = _read(cache_path()).get(key)
    return entry if isinstance(entry, dict) and isinstance(entry.get("seconds"), dict) else None


def store_entry(key: str, entry: dict) -> None:
    """Add an entry to the disk cache: read, merge and rename into place under a lock, so that
    concurrent processes lose nothing and a reader never sees half a file. A cache that cannot be
    written (a read-only home, say) is skipped with a debug message: the choice holds in memory."""
    path = cache_path()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".lock", "w") as lock:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
            entries = _read(path)
            entries[key] = entry
            data = {"format": FORMAT, "machine": machine_key(), "classes": entries}
            fd, tmp = tempfile.mkstemp(prefix=".engines-", dir=os.path.dirname(path))
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(data, f, indent=1, sort_keys=True)
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
    except OSError as e:
        log.debug("rnnlab: the engine choice cache %s cannot be written (%s)", path, e)


# ------------------------------------------------------------------ the shape class
def t_bucket(T: int) -> int:
    """T's class: the power of two at or above it, at most :data:`MAX_BUCKET`."""
    return min(1 << max(T - 1, 0).bit_length(), MAX_BUCKET)


def wants_grad(layer, x: torch.Tensor) -> bool:
    """Whether the call will be differentiated: grad mode on and the input or a parameter
    requiring gradients."""
    return torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in layer._parameters.values()))


def shape_class(layer, x: torch.Tensor, lengths: Optional[torch.Tensor]) -> tuple:
    """What of a call decides the fastest engine, beyond the configuration: (T's bucket, B,
    lengths or not, gradients or not, torch's CPU threads, torch's deterministic mode, which
    fixes the products' kernel: rnnlab.linalg). ``x`` is time-major (T, B, I)."""
    return (t_bucket(x.shape[0]), x.shape[1], lengths is not None, wants_grad(layer, x),
            torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda {torch.cuda.get_device_name(device)}"
    return device.type


def class_key(layer, x: torch.Tensor, lengths: Optional[torch.Tensor], return_states: bool,
              graph: bool = False) -> str:
    """The cache key of a call: the configuration (layer class and options, each cell's class
    and options) and the shape class, as one readable string; ``graph``: a call torch.compile
    traces, whose engines are timed as its graph runs them (:func:`verdict`)."""
    T, B, threads = t_bucket(x.shape[0]), x.shape[1], torch.get_num_threads()
    cells = sorted({f"{type(c).__module__}.{type(c).__qualname__}({c.extra_repr()})" for c in layer.cells})
    return (f"{type(layer).__module__}.{type(layer).__qualname__}({layer.extra_repr()}) "
            f"cells=[{'; '.join(cells)}] training={layer.training} return_states={return_states} "
            f"dtype={str(x.dtype).replace('torch.', '')} device={_device_name(x.device)} "
            f"T<={T} B={B} lengths={lengths is not None} grad={wants_grad(layer, x)} threads={threads}"
            f"{' deterministic' if torch.are_deterministic_algorithms_enabled() else ''}"
            f"{' graph' if graph else ''}")


# ------------------------------------------------------------------ the compiled engine's build
#: this process's knowledge of the compiled engine: None not yet asked, True loaded, False not
#: usable (its build failed, or it is turned off)
_compiled: Optional[bool] = None
#: the background build started by this process, if any
_builder: Optional[subprocess.Popen] = None


def _compiled_off() -> bool:
    return os.environ.get("RNNLAB_COMPILED", "1") == "0"


def compiled_marker() -> str:
    """The file whose presence says the compiled engine is built for the current sources, torch,
    Python and CPU capability (written once it has loaded, here or in the background build)."""
    global _marker
    if _marker is None:
        from . import compiled
        digest = hashlib.sha256(repr((torch.__version__, sys.version_info[:2],
                                      torch.backends.cpu.get_cpu_capability())).encode())
        here = os.path.dirname(compiled.__file__)
        files = [compiled.__file__]
        for root, _, names in os.walk(os.path.join(here, "csrc")):
            files += [os.path.join(root, n) for n in names if n.endswith((".cpp", ".h", ".hpp", ".cc"))]
        for path in sorted(files):
            with open(path, "rb") as f:
                digest.update(os.path.relpath(path, here).encode() + b"\0" + f.read())
        _marker = f"compiled-built-{digest.hexdigest()[:16]}"
    return os.path.join(cache_root(), "autotune", _marker)


_marker: Optional[str] = None


def _mark(path: str, text: str) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text + "\n")
    except OSError as e:
        log.debug("rnnlab: cannot write %s (%s)", path, e)


def _mark_compiled_built() -> None:
    _mark(compiled_marker(), f"built, torch {torch.__version__}")


def compiled_ready(start_build: bool = True) -> bool:
    """Whether the compiled engine can run now without a build in the foreground: loaded in this
    process, or known built (its marker present: loading takes a moment). If not, and
    ``start_build``, its background build is started (once per process) and False returned; a
    later call, once that build has finished, loads it."""
    global _compiled, _builder
    if _compiled is not None:
        return _compiled
    if _compiled_off():
        _compiled = False
        return False
    if _builder is not None:
        rc = _builder.poll()
        if rc is None:
            return False
        _builder = None
        if rc != 0:
            _tell_failure(failed_build() or f"exit {rc}")
            _compiled = False
            return False
    elif not os.path.exists(compiled_marker()):
        why = failed_build()
        if why is not None:  # (no compiler here, say: not tried again in every run)
            _tell_failure(why)
            _compiled = False
        elif start_build:
            _start_build()
        return False
    _compiled = compiled_available()
    if _compiled:
        _mark_compiled_built()
    return _compiled


def note_compiled_runs() -> None:
    """Tell ``auto`` that the compiled engine has loaded in this process (a forced
    ``engine="compiled"`` passed its checks): it is measured from now on without a wait."""
    global _compiled
    if not torch.compiler.is_compiling() and _compiled is not True:  # (a file: not in a graph,
        # whose trace reads no _compiled: dynamo would guard on it, and compile again once it changed)
        _compiled = True
        _mark_compiled_built()


#: the background build's first lines, run before it imports anything: its own process group (a
#: Ctrl-C of the run, or the end of a tool's process group, leaves it to finish) in the same
#: session (a new session is a new scheduling autogroup on Linux, which would share the
#: processor equally with the run whatever its priority), nice 19 and the idle scheduling class,
#: inherited by the compiler. Lowered after ``import torch`` instead (seconds of a processor), the
#: build would crowd the trial that runs meanwhile and skew its verdict.
_LOWER_PRIORITY = """import os
for lower in (os.setpgrp, lambda: os.nice(19), lambda: os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))):
    try:
        lower()
    except (AttributeError, OSError):  # not on this system
        pass
"""


def _start_build() -> None:
    """Build the compiled engine in a detached process at the lowest CPU priority."""
    global _builder, _compiled
    env = dict(os.environ)
    env.setdefault("MAX_JOBS", "1")  # one compiler at a time: the least disturbance to training
    code = _LOWER_PRIORITY + "import rnnlab.engines.autotune as a\na._build_compiled_main()\n"
    try:
        _builder = subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError as e:  # no process to spare: this process goes on without the engine
        log.info("rnnlab: cannot start the compiled engine's background build (%s)", e)
        _compiled = False
        return
    log.warning("rnnlab: building the compiled engine in the background (once per machine, at low "
                "priority); until it is built, auto measures the engines that need no compiler")


def _build_compiled_main() -> None:
    """The background build's process (at the lowest priority already): build, mark success and
    exit 0, or mark the failure with its reason and exit 1."""
    from .compiled import compiled_broken
    ok = compiled_available()
    if ok:
        _mark_compiled_built()
    else:
        _mark(failed_marker(), compiled_broken() or "the build failed")
    sys.exit(0 if ok else 1)


#: a failed background build is started again after this many seconds (a compiler installed since)
BUILD_RETRY = 24 * 3600.0


def failed_marker() -> str:
    """The file that says a background build of the current sources failed, and why."""
    return compiled_marker().replace("compiled-built-", "compiled-failed-")


def failed_build() -> Optional[str]:
    """Why the last background build failed, if it did less than :data:`BUILD_RETRY` ago."""
    try:
        if time.time() - os.path.getmtime(failed_marker()) < BUILD_RETRY:
            with open(failed_marker()) as f:
                return f.read().split("\n")[0].strip() or "the build failed"
    except OSError:
        pass
    return None


def _tell_failure(why: str) -> None:
    """Say once, in the first process that learns of it, why the background build failed (a line
    "told" is added to its mark, whose time stays that of the failure)."""
    path = failed_marker()
    try:
        with open(path) as f:
            if "told" in f.read().split("\n")[1:]:
                return
        when = os.stat(path)
        with open(path, "a") as f:
            f.write("told\n")
        os.utime(path, (when.st_atime, when.st_mtime))
    except OSError:
        pass
    log.warning("rnnlab: the compiled engine could not be built (%s); auto runs the engines that need no "
                "compiler, and the build is tried again in a day (engine='compiled' tries it at once)", why)


# ------------------------------------------------------------------ candidates and rules
def _native_ok(layer, return_states: bool) -> bool:
    return not return_states and native_unsupported(layer) is None


def candidates(layer, x: torch.Tensor, return_states: bool = False) -> List[str]:
    """The engines that compute this call's configuration, in a fixed order (native, compiled,
    bptt). ``compiled`` is left out while it is not built and ``native`` can run the call
    (its background build is started then); where it is the only fast candidate it is built
    now if need be (not for a cell class it does not implement)."""
    out = []
    native = _native_ok(layer, return_states)
    if native:
        out.append("native")
    if x.device.type == "cpu" and not _compiled_off():
        # (compiled_unsupported names a cell class the engine lacks before it builds anything)
        if compiled_ready() or (not native and not any(compiled_unsupported(c) for c in layer.cells)):
            if compiled_layer_unsupported(layer, x) is None:
                out.append("compiled")
    if x.device.type == "cuda" and not native and triton_unsupported(x) is None:
        out.append("triton")  # the fused cores, where torch has no fused kernel
    out.append("bptt")
    return out


def rule_choice(layer, x: Optional[torch.Tensor], return_states: bool = False) -> str:
    """``auto`` without measurement (``RNNLAB_AUTOTUNE=0``, or no input to measure on): on the
    CPU ``compiled`` wherever it runs (built on first use), else ``native`` where torch's kernel
    runs the configuration and is the faster (:func:`~rnnlab.engines.native.native_is_fastest`:
    the float32 LSTM), else ``bptt``; on a GPU ``native`` where torch has the kernel, else
    ``bptt``."""
    on_cpu = x is None or x.device.type == "cpu"
    if on_cpu and not _compiled_off() and not compiled_layer_unsupported(layer, x):
        note_compiled_runs()
        return "compiled"
    fastest = x is None or native_is_fastest(layer, x)
    if _native_ok(layer, return_states) and fastest:
        return "native"
    return "triton" if x is not None and x.device.type == "cuda" and triton_unsupported(x) is None else "bptt"


# ------------------------------------------------------------------ the trial
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def trial(layer, x: torch.Tensor, lengths: Optional[torch.Tensor], return_states: bool,
          engines: Sequence[str], clock=time.perf_counter) -> Tuple[Dict[str, float], bool]:
    """(seconds per call of each engine in ``engines``, steady) on random inputs of the call's
    shape class, forward and, if the call wants gradients, backward (module docstring): a
    screening at :data:`SCREEN_STEPS` steps drops what is more than :data:`DROP_RATIO` times the
    best, then the finalists are timed at min(T, :data:`TRIAL_STEPS`) steps, the least of their
    timings kept (a dropped engine's figure is its screening time scaled to those steps).
    ``steady``: every finalist's two least warm timings agree within :data:`NOISE`. ``clock`` is
    the timer (tests replace it). The layer, its gradients and torch's global random state are
    left as they were."""
    T, B, I = min(x.shape[0], TRIAL_STEPS), x.shape[1], x.shape[2]
    grad = wants_grad(layer, x)
    gen = torch.Generator().manual_seed(0)
    xs = torch.randn(T, B, I, generator=gen).to(device=x.device, dtype=x.dtype)        # (T, B, I)
    lens = None
    if lengths is not None:  # lengths spread over [T/2, T], the longest T
        lens = torch.randint(max(T // 2, 1), T + 1, (B,), generator=gen)
        lens[0] = T
    devices = [x.device.index or 0] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.set_grad_enabled(grad):
        m = copy.deepcopy(layer)
        m.batch_first = False
        xs.requires_grad_(grad and x.requires_grad)
        params = [p for p in m.parameters() if p.requires_grad]

        def call(engine: str, steps: int) -> None:
            m.engine = m.last_engine = engine       # (last_engine set: the copy logs no switch)
            xt = xs[:steps]                                                        # (steps, B, I)
            lt = None if lens is None else lens.clamp(max=steps)
            out = m.run(xt, None, lt, return_states)[0]
            inputs = params + ([xs] if xs.requires_grad else [])
            if grad and inputs:
                torch.autograd.grad(out, inputs, torch.ones_like(out), allow_unused=True)

        def timed(engine: str, steps: int, n: int = 1) -> float:
            _sync(x.device)
            t0 = clock()
            for _ in range(n):
                call(engine, steps)
            _sync(x.device)
            return (clock() - t0) / n

        def screen(engines: Sequence[str], steps: int) -> Dict[str, float]:
            """One warm-up call and one timing each."""
            out = {}
            for e in engines:
                call(e, steps)
                out[e] = timed(e, steps)
            return out

        def rounds(finalists: Sequence[str], steps: int, warm_up: bool) -> Dict[str, List[float]]:
            """A first timing of each (after a warm-up call if ``warm_up``; else the first timing,
            cold, is the warm-up), then up to :data:`REPEATS` rounds, each in another order,
            stopping after the second once :data:`BUDGET` seconds are spent."""
            t0, first = clock(), {}
            for e in finalists:
                if warm_up:
                    call(e, steps)                  # allocations, kernel set-up
                first[e] = timed(e, steps)
            inner = {e: max(1, round(MIN_TIMING / max(first[e], 1e-9))) for e in finalists}
            times: Dict[str, List[float]] = {e: [] for e in finalists}
            for r in range(REPEATS):
                k = r % len(finalists)
                for e in finalists[k:] + finalists[:k]:
                    times[e].append(timed(e, steps, inner[e]))
                if r >= 1 and clock() - t0 > BUDGET:
                    break
            return {e: [first[e], *ts] for e, ts in times.items()}  # (the first cold unless warm_up)

        short = min(T, SCREEN_STEPS)
        screened = screen(list(engines), short) if short < T else {}
        best = min(screened.values(), default=0.0)
        finalists = [e for e in engines if not screened or screened[e] <= DROP_RATIO * best]
        seconds = {e: screened[e] * T / short for e in engines if e not in finalists}
        steady = True
        if len(finalists) == 1:
            seconds[finalists[0]] = screened[finalists[0]] * T / short
        else:
            timings = rounds(finalists, T, warm_up=not screened)
            for e, ts in timings.items():
                seconds[e] = min(ts)
                a, b = sorted(ts[1:])[:2]
                steady = steady and b <= (1 + NOISE) * a
    return {e: seconds[e] for e in engines}, steady


def machine_busy() -> bool:
    """Whether other work crowds the processors: the load average over the last minute above
    their number plus one (this process's own threads account for at most their number). A trial
    then decides for its process only (False where the system has no load average)."""
    try:
        return os.getloadavg()[0] > (os.cpu_count() or 1) + 1
    except (AttributeError, OSError):
        return False


def close_call(entry: dict) -> bool:
    """Whether a disk entry is a close call still open: fewer than :data:`CLOSE_TRIALS` trials,
    the runner-up within :data:`CLOSE` of the winner."""
    times = sorted(entry["seconds"].values())
    return entry.get("trials", 1) < CLOSE_TRIALS and len(times) > 1 and times[1] <= (1 + CLOSE) * times[0]


def fastest(seconds: Dict[str, float]) -> str:
    """The engine of the least time, where torch's kernel (which runs exactly what torch.nn
    runs) gives way only to an engine at least :data:`NATIVE_MARGIN` faster: a closer figure is
    within a trial's noise."""
    best = min(seconds, key=seconds.get)
    if "native" in seconds and seconds["native"] <= (1 + NATIVE_MARGIN) * seconds[best]:
        return "native"
    return best


# ------------------------------------------------------------------ the choice
#: shape-class key -> (monotonic time when its provisional choice is measured again, trials so
#: far): a trial other work disturbed (unsteady, or the machine busy) decides for
#: :data:`RETRY_AFTER` seconds, then the class is measured again, at most :data:`TRIALS` times
_retry: Dict[str, Tuple[float, int]] = {}
RETRY_AFTER = 30.0
TRIALS = 3


def choose_engine(layer, x: Optional[torch.Tensor], lengths: Optional[torch.Tensor] = None,
                  return_states: bool = False, graph: bool = False, one_graph: bool = False) -> str:
    """The engine ``auto`` runs for this call of ``layer`` on ``x`` (time-major (T, B, I))."""
    return verdict(layer, x, lengths, return_states, graph, one_graph)[0]


def verdict(layer, x: Optional[torch.Tensor], lengths: Optional[torch.Tensor] = None,
            return_states: bool = False, graph: bool = False, one_graph: bool = False) -> Tuple[str, Optional[float]]:
    """(:func:`choose_engine`'s engine, the monotonic time after which to ask again, or None: the
    choice is final for this process). ``graph``: for a call torch.compile traces without
    gradients; the trial runs the compiled engine through its custom operators, as the graph
    will, and its choice is cached apart. ``one_graph``:
    for ``torch.compile(..., fullgraph=True)``, only the engines that stay in the graph: the
    compiled engine's operators, and torch's kernel's without gradients (none of them: dynamo
    says why it breaks)."""
    if x is None or not enabled():
        return rule_choice(layer, x, return_states), None
    engines = candidates(layer, x, return_states)
    if one_graph:
        grad = wants_grad(layer, x)
        engines = [e for e in engines if e == "compiled" or (e == "native" and not grad)] or engines
    if len(engines) == 1:
        return engines[0], None
    key = class_key(layer, x, lengths, return_states, graph) + (" one graph" if one_graph else "")
    known, (until, trials) = _memory.get(key), _retry.get(key, (None, 0))
    if known in engines and (until is None or time.monotonic() < until):
        return known, until
    entry = load_entry(key) if until is None else None
    if entry is not None and (sorted(entry["seconds"]) != sorted(engines) or entry.get("engine") not in engines):
        entry = None
    if entry is not None and not close_call(entry):
        _memory[key] = entry["engine"]
        return entry["engine"], None
    t0, busy = time.perf_counter(), machine_busy()
    try:
        with as_operators() if graph else contextlib.nullcontext():
            seconds, steady = trial(layer, x, lengths, return_states, engines)
    except Exception as e:  # anything the copy cannot do: the rules decide, and say so once
        log.warning("rnnlab: auto could not measure the engines of %s (%s: %s); using the rules",
                    type(layer).__name__, type(e).__name__, e)
        engine = rule_choice(layer, x, return_states)
        _memory[key] = engine
        return engine, None
    n = 1
    if entry is not None:  # a close call measured again: each engine's mean over the trials
        n = entry.get("trials", 1) + 1
        seconds = {e: (entry["seconds"][e] * (n - 1) + s) / n for e, s in seconds.items()}
    engine = fastest(seconds)
    busy = busy or machine_busy()
    final = (steady and not busy) or trials + 1 >= TRIALS
    log.info("rnnlab: auto measured %s in %.2f s: %s%s -> %s%s", type(layer).__name__, time.perf_counter() - t0,
             ", ".join(f"{e} {1e3 * s:.2f} ms" for e, s in seconds.items()),
             f" (the mean of {n} trials)" if n > 1 else "", engine,
             "" if steady and not busy else
             f" (timings {'unsteady' if not steady else 'on a busy machine'}: "
             f"{'for this process only' if final else f'measured again in {RETRY_AFTER:.0f} s'})")
    _memory[key] = engine
    if final:
        _retry.pop(key, None)
    else:
        until = time.monotonic() + RETRY_AFTER
        _retry[key] = (until, trials + 1)
    if steady and not busy:  # a trial other work disturbed is not kept for later runs
        store_entry(key, {"engine": engine, "seconds": seconds, "trials": n, "trial_steps": min(x.shape[0], TRIAL_STEPS),
                          "measured": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return engine, None if final else until



@compiler.assume_constant_result
def traced_choice(layer, x: torch.Tensor, lengths: bool, grad: bool, x_grad: bool, training: bool,
                  return_states: bool) -> str:
    """``auto``'s engine for a call that torch.compile traces (measured now, eagerly, if no
    choice is known). dynamo calls this once per trace, with ``x`` the real input of the call it
    traces (T, B, I), and takes the answer as a constant: no guard on T's bucket, no
    recompilation per bucket. Without gradients the engines are timed as the graph runs them
    (``graph``: the compiled engine's operators); with them, eager calls' verdict holds: the
    operators timed eagerly pay their Python autograd, which a graph does not, and tipped small
    sizes to torch's kernel, a graph break that was no faster (docs/benchmarks/compile.md). ``grad``: grad mode on; ``x_grad``: the input requires
    gradients; ``training``: the layer's flag, passed so that dynamo guards on it."""
    one_graph = compiler.fullgraph()
    with compiler.eager(), torch.set_grad_enabled(grad):
        x = torch.zeros(x.shape, dtype=x.dtype, device=x.device).requires_grad_(x_grad)
        lens = torch.full((x.shape[1],), x.shape[0]) if lengths else None
        return choose_engine(layer, x, lens, return_states, graph=not grad, one_graph=one_graph)
