"""``rnnlab diagnose``: the long-term dependency diagnostics of one model, as PNG and JSON.

The model is a saved run's (its best weights, or with ``initial`` the weights it started from) or
a fresh one of a task's settings. Its first recurrent layer is measured on a batch of the task's
own data (:mod:`.probes`):

- gradient_flow.png: ||dL/dh_k|| against the lag n - k, from the bptt engine's backward;
- jacobians.png: ||ds_n/ds_{n-k}||_2 along the first sequence, from the cell's step backward;
- spectrum.png: the eigenvalues of each block of W_hh and the unit circle;
- gates.png: each gate's saturation and its mean over time (gated cells);
- heatmap.png: chosen units, or those that track quotes, line position, indentation and brackets,
  over a text, character by character (character language models);
- diagnostics.json: every figure behind the pictures.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch

from ..errors import ConfigError
from ..training.atomic import write_text
from .gates import gate_statistics
from .gradient_flow import decay_rate, norms_by_lag, state_gradients
from .jacobians import jacobian_product_norms
from .plots import plot_curves, plot_gates, plot_spectrum
from .probes import check_probed, make_probe
from .spectrum import recurrent_spectra, spectral_radius
from .unit_heatmap import chosen_units, plot_heatmap, tracking_units, unit_activity

RESULT = "diagnostics.json"


def _finite(values):
    return [v if math.isfinite(v) else None for v in (float(x) for x in values)]


def load_model(run_dir=None, task: str = "adding", initial: bool = False, settings=None):
    """(recipe, data config, model, assets, label) of a saved run or of a fresh model."""
    from ..tasks import get_recipe
    from ..tasks.recipe import load_run
    from ..tasks.starting_points import start_model
    from ..training import run_directory
    from ..training.config import from_dict, TrainConfig
    settings = dict(settings or {})
    if run_dir is None:
        recipe = check_probed(get_recipe(task))
        data, mcfg, train = recipe.configs(settings, "diagnose")
        job = recipe.prepare(data, train)
        torch.manual_seed(train.seed)                  # as rnnlab train seeds a new model
        model = recipe.build_model(job.assets, mcfg)
        return recipe, data, model.eval(), job.assets, f"{task}-{getattr(mcfg, 'cell', '')} (initial)"
    if settings:
        raise ConfigError(f"diagnose {run_dir}: the run keeps its own settings; "
                          f"{next(iter(settings))!r} applies only to a fresh model (no RUN_DIR)")
    if not initial:
        run = load_run(run_dir)
        check_probed(run.recipe)
        return run.recipe, run.data, run.model, run.assets, f"{Path(run_dir).name} (trained)"
    cfg = run_directory.read_config(run_dir)
    recipe = check_probed(get_recipe(cfg.get("task")))
    run = load_run(run_dir)                          # checks the run; its data and assets serve
    train = from_dict(TrainConfig, cfg.get("train"), f"{run_dir}/config.json [train]")
    mcfg = from_dict(recipe.model_config, cfg.get("model"), f"{run_dir}/config.json [model]")
    torch.manual_seed(train.seed)
    model = recipe.build_model(run.assets, mcfg)
    start_model(model, recipe, run.assets, cfg.get("start") or {}, speak=False)   # --init-from, --embeddings
    return recipe, run.data, model.eval(), run.assets, f"{Path(run_dir).name} (initial)"


def diagnose(run_dir=None, *, out=None, task: str = "adding", initial: bool = False,
             batch: int = 32, window: int = 200, text: Optional[str] = None, force: bool = False,
             plots: bool = True, units: Optional[Sequence[str]] = None, device: str = "auto",
             **settings) -> Dict[str, Any]:
    """Measure a model (module docstring); write the pictures and diagnostics.json to ``out``
    (default RUN_DIR/diagnostics, or runs/diagnose-TASK for a fresh model) and return the figures.
    ``batch``: sequences probed; ``window``: symbols per sequence for a language model; ``text``:
    the text a language model reads (default its held-out text); ``units``: the units the heatmap
    shows, as "STATE:UNIT" ("h:12", "c:40"; default: those that track the text's properties).
    ``device``: the measurements run on the CPU (a few sequences: no accelerator needed); ``auto``
    and ``cpu`` take it, a named accelerator is refused with one error, before anything is written."""
    from ..training.device import resolve_device
    if resolve_device(device).type != "cpu" and device not in (None, "auto"):
        raise ConfigError(f"diagnose measures on the CPU (a few sequences); --device {device} does "
                          f"not apply; use --device cpu or auto")
    for name, value in (("batch", batch), ("window", window)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
    if initial and run_dir is None:
        raise ConfigError("initial reads the starting weights of a run: give RUN_DIR")
    recipe, data, model, assets, label = load_model(run_dir, task, initial, settings)
    if out is None:
        out = Path(run_dir) / ("diagnostics-initial" if initial else "diagnostics") if run_dir \
            else Path("runs") / f"diagnose-{recipe.name}"
    out = Path(out)
    if (out / RESULT).exists() and not force:
        raise ConfigError(f"{out} already holds diagnostics; give --force to replace them "
                          f"or --out another folder")
    if units and recipe.name != "lm":
        raise ConfigError(f"units choose what the heatmap of a character language model shows; "
                          f"this is a model of --task {recipe.name}")
    if recipe.name == "lm" and text is None:
        from ..tasks.language_modelling import held_out_text
        text = held_out_text(data, None, data.encoding, run_dir or "the data")
    probe = make_probe(recipe, data, model, assets, batch, window, text)
    layer, cell = probe.layer, probe.layer.cells[0]
    p = {k: v.detach() for k, v in layer.cell_params(0).items()}

    grads = state_gradients(layer, probe.loss)                              # (T, B, H)
    model.zero_grad(set_to_none=True)
    flow = norms_by_lag(grads, probe.lengths)                               # (T,)
    factor, vanish_lag = decay_rate(flow)
    first = probe.inputs[:, 0] if probe.lengths is None else probe.inputs[:int(probe.lengths[0]), 0]
    jac = jacobian_product_norms(cell, p, first)                            # (n,)
    spectra = recurrent_spectra(cell, p)
    gates = gate_statistics(cell, {k: v.to(probe.inputs.dtype) for k, v in p.items()},
                            probe.inputs, probe.lengths)
    result: Dict[str, Any] = {
        "model": label, "task": recipe.name, "cell": type(cell).__name__,
        "hidden_size": cell.hidden_size, "sequences": probe.inputs.shape[1],
        "steps": probe.inputs.shape[0],
        "gradient_flow": {"lag": list(range(len(flow))), "norm": _finite(flow),
                          "factor_per_step": factor, "lag_below_1e-6": vanish_lag},
        "jacobian_product_norms": {"lag": list(range(1, len(jac) + 1)), "norm": _finite(jac)},
        "spectra": {name: {"radius": spectral_radius(e),
                           "eigenvalues": [[float(z.real), float(z.imag)] for z in e]}
                    for name, e in spectra.items()},
        "gates": gates,
    }
    out.mkdir(parents=True, exist_ok=True)
    if recipe.name == "lm" and assets.level == "char":
        shown = text[:600]
        activity = unit_activity(model, assets, shown)
        found = chosen_units(activity, shown, units) if units else tracking_units(activity, shown)
        result["units"] = found
        if plots:
            panels = [{"state": u["state"], "unit": u["unit"],
                       "title": f"{u['state']} unit {u['unit']}: r = {u['correlation']:.2f} "
                                f"with {u['feature']}"} for u in found]
            plot_heatmap(shown, panels, activity, out / "heatmap.png")
    if plots:
        plot_curves({label: flow}, out / "gradient_flow.png", f"gradient flow, {label}",
                    "lag n - k", "mean ||dL/dh_k||")
        plot_curves({label: jac}, out / "jacobians.png", f"product of step Jacobians, {label}",
                    "lag k (from 1)", "||ds_n / ds_(n-k)||_2")
        plot_spectrum(spectra, out / "spectrum.png", f"eigenvalues of W_hh, {label}")
        if gates:
            plot_gates(gates, out / "gates.png", f"gate statistics, {label}")
    write_text(out / RESULT, json.dumps(result, indent=1))
    result["out"] = str(out)
    return result
