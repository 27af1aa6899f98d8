r"""What the diagnostics feed a model: for each task, a batch of its own data and a loss read at
the last step only, so that dL/dh_k measures how much the answer at step n depends on step k.

- adding: the squared error of the answer read after each sequence's last step;
- copy: the cross-entropy of the last copied symbol (written T + 10 steps before);
- lm: the cross-entropy of the symbol after the last of a window of ``length`` symbols of the
  run's held-out text.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import torch
from torch.nn import functional as F

from ..errors import ConfigError

#: the tasks whose models the diagnostics know how to probe
PROBED_TASKS = ("adding", "copy", "lm")


class Probe(NamedTuple):
    layer: torch.nn.Module              # the recurrent layer diagnosed
    inputs: torch.Tensor                # (T, B, I) what its first layer reads
    lengths: Optional[torch.Tensor]     # (B,) or None: all T
    loss: Callable[[], torch.Tensor]    # the loss at the last step, through the whole model


def check_probed(recipe):
    """``recipe`` if the diagnostics know its task's models; a ConfigError naming those they know."""
    if recipe.name not in PROBED_TASKS:
        raise ConfigError(f"diagnose knows the models of tasks {', '.join(PROBED_TASKS)}; "
                          f"found --task {recipe.name}")
    return recipe


def make_probe(recipe, data, model, assets, batch: int, length: int, text: Optional[str] = None) -> Probe:
    """The probe of ``model`` (a model of ``recipe``'s task) on ``batch`` sequences of its data."""
    check_probed(recipe)
    if recipe.name == "lm":
        return _language_model_probe(model, assets, text, batch, length)
    examples = recipe.examples(data, "test")[:batch]
    if not examples:
        raise ConfigError("the run draws no test sequences (test_sequences 0): nothing to probe")
    if recipe.name == "adding":
        from ..tasks.examples import pad
        x, lengths = pad([e.x for e in examples])                            # (T, B, 2), (B,)
        y = torch.tensor([e.y for e in examples])                            # (B,)
        return Probe(model.rnn, model.input_mlp(x).detach(), lengths,
                     lambda: ((model(x, lengths) - y) ** 2).mean())
    x = torch.stack([e.x for e in examples], dim=1)                          # (T + 20, B)
    y = torch.stack([e.y for e in examples], dim=1)
    return Probe(model.rnn, model.input_mlp(model.embedding(x)).detach(), None,
                 lambda: F.cross_entropy(model(x)[-1], y[-1]))


def _language_model_probe(model, vocab, text: Optional[str], batch: int, length: int) -> Probe:
    if not hasattr(model, "rnn"):
        raise ConfigError("diagnose needs a recurrent language model; this one has no recurrent layer")
    ids = vocab.encode(text)
    if ids.numel() < length + 1:
        raise ConfigError(f"the text for diagnose needs at least {length + 1} symbols "
                          f"(--length {length}), found {ids.numel()}")
    starts = torch.linspace(0, ids.numel() - length - 1, batch).long()
    tokens = torch.stack([ids[s:s + length] for s in starts], dim=1)         # (T, B)
    target = torch.stack([ids[s + length] for s in starts])                  # (B,)

    def layer_input(tokens):
        if model.embedding is not None:
            x = model.embedding(tokens)                                       # (T, B, M)
        else:
            x = F.one_hot(tokens, model.config.vocab_size).to(model.decoder.weight.dtype)
        return model.input_mlp(x)                                             # the layer's input

    def loss():
        out, _ = model.rnn(layer_input(tokens))                              # (T, B, H)
        return F.cross_entropy(model.decoder(model.output_mlp(out[-1])), target)
    return Probe(model.rnn, layer_input(tokens).detach(), None, loss)
