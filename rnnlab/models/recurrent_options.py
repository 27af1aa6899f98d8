r"""The options of a model's recurrent layer, one description for every task.

Every model config with a recurrent layer derives from :class:`RecurrentOptions`, so every task
takes the same settings under the same names (``--layer-norm``, ``--recurrent-dropout``,
``--zoneout``, ``--weight-drop``, ``--skip-steps``, ``--input-layers``, ``--output-layers``,
``--mlp-size``; with the config's own ``cell`` and ``cell_options``), saves them in the run's
config.json and rebuilds the same layer on load. :func:`build_recurrent` builds the layer from
them, with the deep RNN's step MLPs (the DL book's figure 10.13 b, :mod:`rnnlab.layers.step_mlp`):

    z_t = MLP_in(x_t),   h_t = layer(z_t, h_{t-1}),   o_t = MLP_out(h_t)

and the task's output layer reads o_t (the identity, no parameters, with 0 layers: the model of
before, weight for weight under the same seed).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from ..engines.regularization import OPTIONS as MASK_OPTIONS
from ..errors import ConfigError
from ..layers import LAYERS
from ..layers.recurrent_layer import RecurrentLayer
from ..layers.step_mlp import StepMLP

#: the regularizers of the layer (rnnlab.engines.regularization; layer_norm is a cell option)
REGULARIZERS = ("layer_norm",) + MASK_OPTIONS


def _help(text: str) -> Dict[str, Any]:
    return {"help": text, "recurrent": True}


@dataclass
class RecurrentOptions:
    """The recurrent layer's options (module docstring), a base of every model config with one."""
    layer_norm: bool = dataclasses.field(default=False, metadata=_help(
        "layer normalisation of the cell's products (Ba et al.)"))
    recurrent_dropout: float = dataclasses.field(default=0.0, metadata=_help(
        "variational dropout on h_{t-1} in the recurrent products, one mask per sequence"))
    zoneout: float = dataclasses.field(default=0.0, metadata=_help(
        "each state unit keeps its previous value with this probability"))
    weight_drop: float = dataclasses.field(default=0.0, metadata=_help(
        "DropConnect on the recurrent weights, one mask per forward call"))
    skip_steps: int = dataclasses.field(default=0, metadata=_help(
        "d > 0: every gate also reads h_{t-d} (skip connections through time); 0: none"))
    input_layers: int = dataclasses.field(default=0, metadata=_help(
        "tanh layers of an MLP from each step's input to the recurrent layer (deep RNN, DL book "
        "fig. 10.13 b); 0: none"))
    output_layers: int = dataclasses.field(default=0, metadata=_help(
        "tanh layers of an MLP from the recurrent layer's output to the task's output layer; 0: none"))
    mlp_size: int = dataclasses.field(default=0, metadata=_help(
        "width of those MLPs; 0: the hidden size"))


def recurrent_option_names() -> Tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(RecurrentOptions))


def is_recurrent_option(config_class, name: str) -> bool:
    """Whether ``name`` is one of the shared recurrent-layer options of ``config_class``."""
    return any(f.name == name and f.metadata.get("recurrent")
               for f in dataclasses.fields(config_class)) if dataclasses.is_dataclass(config_class) else False


def option_help(name: str) -> str:
    for f in dataclasses.fields(RecurrentOptions):
        if f.name == name:
            return f.metadata["help"]
    return ""


def _probability(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(f"{name} must be a probability in [0, 1), got {value!r}")


def _whole(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be a whole number >= 0, got {value!r}")


def changed_options(config) -> Dict[str, Any]:
    """The recurrent options of ``config`` moved away from their defaults."""
    out = {}
    for f in dataclasses.fields(RecurrentOptions):
        if getattr(config, f.name) != f.default:
            out[f.name] = getattr(config, f.name)
    return out


def check_recurrent_options(config, applies: bool = True, why: str = "") -> None:
    """Each option's value; with ``applies`` False (the model has no recurrent layer, e.g. the
    NTM or a tree network) any option moved from its default is refused, ``why`` saying so."""
    if not isinstance(config.layer_norm, bool):
        raise ConfigError(f"layer_norm must be true or false, got {config.layer_norm!r}")
    for name in MASK_OPTIONS:
        _probability(name, getattr(config, name))
    for name in ("skip_steps", "input_layers", "output_layers", "mlp_size"):
        _whole(name, getattr(config, name))
    given = changed_options(config)
    if not applies and given:
        name = next(iter(given))
        raise ConfigError(f"{name} is an option of a recurrent layer; {why or 'this model has none'}")
    options = getattr(config, "cell_options", None) or {}
    for name in REGULARIZERS + ("skip_steps",):
        if name in options and name in given and options[name] != given[name]:
            raise ConfigError(f"{name} given twice, {given[name]!r} and in cell_options "
                              f"{options[name]!r}; give it once")


def layer_options(config) -> Dict[str, Any]:
    """The keyword options of the layer: the regularizers and ``skip_steps`` set (only those, so
    a layer of defaults is built exactly as before), then ``cell_options``."""
    out = {k: getattr(config, k) for k in REGULARIZERS + ("skip_steps",) if getattr(config, k)}
    out.update(getattr(config, "cell_options", None) or {})
    return out


def build_recurrent(config, input_size: int, hidden_size: int, cell: Optional[str] = None,
                    **layer_args) -> Tuple[StepMLP, RecurrentLayer, StepMLP]:
    """(input MLP, layer, output MLP) of ``config`` (a :class:`RecurrentOptions`): the layer
    ``LAYERS[cell or config.cell]`` reads the input MLP's output; ``layer_args`` are the layer's
    own arguments (``num_layers``, ``bidirectional``, ``engine``, ...). The output MLP reads the
    layer's output (D * H_out); its ``out_size`` is what the task's output layer reads."""
    mlp_in = input_mlp(config, input_size, hidden_size)
    layer = LAYERS[cell or config.cell](mlp_in.out_size, hidden_size, **layer_args,
                                        **layer_options(config))
    D = 2 if layer.bidirectional else 1
    mlp_out = output_mlp(config, D * layer.cells[-1].output_size, hidden_size)
    return mlp_in, layer, mlp_out


def input_mlp(config, input_size: int, hidden_size: int) -> StepMLP:
    """The input-to-hidden MLP of ``config``: ``input_layers`` of width ``mlp_size`` (0: H)."""
    return StepMLP(input_size, config.input_layers, config.mlp_size or hidden_size)


def output_mlp(config, size: int, hidden_size: int) -> StepMLP:
    """The hidden-to-output MLP of ``config`` over features of ``size``."""
    return StepMLP(size, config.output_layers, config.mlp_size or hidden_size)


def describe(model) -> Dict[str, str]:
    """A model's recurrent layers and step MLPs by name, as ``repr`` writes them: two models
    with equal descriptions have the same layer configuration."""
    return {name: repr(m) for name, m in model.named_modules()
            if isinstance(m, (RecurrentLayer, StepMLP))}
