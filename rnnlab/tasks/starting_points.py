"""Starting a new run from what another run (or a file) learned, not from random weights.

``init_from``: every tensor of a saved run's best weights (``model.safetensors``) whose name and
shape match the new model's is copied in; the rest keep their fresh initialisation, and the
report names them. Tensors whose rows stand for the words of a vocabulary (word embeddings, a
language model's output layer; the recipe's ``vocabulary_rows``) are copied row by row, by word,
when the two runs' vocabularies differ: each word found in both takes its row, whatever its index
(the shapes may then differ in the number of rows). Every other tensor is matched by name and shape
alone.

``embeddings``: word vectors in word2vec text format (:mod:`rnnlab.embeddings.text_format`), or a
run that has word embeddings (a ``word2vec`` run: the words its training text showed), initialise
the rows of the model's word embeddings (the recipe's ``word_embeddings``) of every word found;
a word missing as written takes the vector of a case variant (``the`` of ``The``).

Both read JSON, safetensors and text only, and change nothing until everything is read and checked.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError, RnnlabError
from ..training import run_directory
from ..training.checkpoint import read_checkpoint
from ..training.trainer import CHECKPOINT
from .recipe import BEST, Recipe

#: names of unmatched tensors listed in a report, at most
LISTED = 8


def run_weights(run_dir, option: str) -> Tuple[Recipe, object, Dict[str, torch.Tensor]]:
    """(recipe, assets, best weights) of the saved run at ``run_dir``; its latest checkpoint's
    weights if it kept no best weights. An error that starts with ``option`` (the flag that named
    the run) if ``run_dir`` is not a run."""
    try:
        return _run_weights(Path(run_dir))
    except RnnlabError as e:
        raise type(e)(f"{option} {run_dir}: {e}") from None


def _run_weights(run_dir: Path):
    from . import TASKS, get_recipe
    from ..errors import closest
    cfg = run_directory.read_config(run_dir)
    if cfg["task"] not in TASKS:
        raise CheckpointError(f"{run_dir}: a run of task {cfg['task']!r}, which this rnnlab does not "
                              f"know{closest(cfg['task'], TASKS)}")
    recipe = get_recipe(cfg["task"])
    assets = recipe.load_assets(run_dir)
    path = run_dir / BEST if (run_dir / BEST).exists() else run_dir / CHECKPOINT
    if not path.exists():
        raise CheckpointError(f"{run_dir}: expected the run's weights {BEST} (or {CHECKPOINT}); "
                              f"neither is there")
    groups, _ = read_checkpoint(path)
    for name, t in groups["model"].items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{path}: {name} holds NaN or infinite values; the file is corrupt")
    return recipe, assets, groups["model"]


def _rows_by_word(own_words: Sequence[str], their_words: Sequence[str]) -> Tuple[List[int], List[int]]:
    """Row indices (ours, theirs) of the words found in both lists."""
    theirs = {w: i for i, w in enumerate(their_words)}
    pairs = [(i, theirs[w]) for i, w in enumerate(own_words) if w in theirs]
    return [i for i, _ in pairs], [j for _, j in pairs]


def _shape(t: torch.Tensor) -> str:
    return str(tuple(t.shape))


def _listed(names: List[str]) -> str:
    more = f", and {len(names) - LISTED} more" if len(names) > LISTED else ""
    return ", ".join(names[:LISTED]) + more


def init_from(model: nn.Module, recipe: Recipe, assets, run_dir,
              say: Optional[Callable[[str], None]] = None) -> dict:
    """Copy into ``model`` (of ``recipe``'s task, with ``assets``) every tensor of the run at
    ``run_dir`` that matches (module docstring); returns {"loaded": [...], "by_word": {name: rows},
    "not_loaded": {name: why}} and says it in one line. A CheckpointError if nothing matches."""
    their_recipe, their_assets, weights = run_weights(run_dir, "--init-from")
    own = model.state_dict()
    own_rows = recipe.vocabulary_rows(assets)
    their_rows = their_recipe.vocabulary_rows(their_assets)
    new, loaded, by_word, not_loaded = {}, [], {}, {}
    for name, mine in own.items():
        theirs = weights.get(name)
        if theirs is None:
            not_loaded[name] = "not in that run"
        elif mine.is_floating_point() != theirs.is_floating_point():
            not_loaded[name] = f"{theirs.dtype} there, {mine.dtype} here"
        elif name in own_rows and name in their_rows and list(own_rows[name]) != list(their_rows[name]):
            if mine.shape[1:] != theirs.shape[1:] or len(their_rows[name]) != theirs.shape[0]:
                not_loaded[name] = f"shape {_shape(theirs)} there, {_shape(mine)} here"
                continue
            ours_i, theirs_i = _rows_by_word(own_rows[name], their_rows[name])
            if not ours_i:
                not_loaded[name] = "no word in common"
                continue
            t = mine.clone()
            t[ours_i] = theirs[theirs_i].to(t.dtype)
            new[name] = t
            by_word[name] = len(ours_i)
        elif mine.shape != theirs.shape:
            not_loaded[name] = f"shape {_shape(theirs)} there, {_shape(mine)} here"
        else:
            new[name] = theirs.to(mine.dtype)
            loaded.append(name)
    if not new:
        raise CheckpointError(f"--init-from {run_dir}: no tensor of this model matches one of that run "
                              f"(task {their_recipe.name}) by name and shape; expected names such as "
                              f"{_listed(sorted(own)[:3])}, found {_listed(sorted(weights)[:3]) or 'none'}")
    model.load_state_dict({**own, **new})
    parts = [f"--init-from {run_dir}: {len(new)} of {len(own)} tensors loaded"]
    if by_word:
        parts.append("by word: " + ", ".join(f"{n} {k} of {len(own_rows[n])} rows" for n, k in by_word.items()))
    if not_loaded:
        parts.append("not loaded: " + _listed([f"{n} ({why})" for n, why in not_loaded.items()]))
    (say or print)("; ".join(parts))
    return {"loaded": loaded, "by_word": by_word, "not_loaded": not_loaded}


def word_vectors_of(source, wanted: Set[str]) -> Tuple[int, Dict[str, torch.Tensor]]:
    """(D, {word: vector}) of the words of ``source`` (a word2vec text file, or a run with word
    embeddings) that are in ``wanted`` or whose lower case is."""
    from ..embeddings.text_format import read_word2vec_text
    p = Path(source)
    if not p.is_dir():
        return read_word2vec_text(p, wanted, fold_case=True)
    if not (p / "config.json").exists():
        raise CheckpointError(f"--embeddings {p}: expected a word-vector file or a run directory "
                              f"(with config.json); found a folder without one")
    recipe, assets, weights = run_weights(p, "--embeddings")
    words, vectors = recipe.word_vectors(assets, weights)
    if vectors is None:
        raise ConfigError(f"--embeddings {p}: a run of task {recipe.name!r}, which has no word "
                          f"embeddings; expected a word2vec run or a word2vec text file")
    return vectors.shape[1], {w: v for w, v in zip(words, vectors.float())
                              if w in wanted or w.lower() in wanted}


def init_embeddings(model: nn.Module, recipe: Recipe, assets, source,
                    say: Optional[Callable[[str], None]] = None) -> Dict[str, int]:
    """Set the rows of ``model``'s word embeddings to the vectors of ``source`` (module
    docstring); returns {embedding name: words found} and says it in one line. A ConfigError if
    the task has no word embedding or the widths differ."""
    tables = recipe.word_embeddings(assets)
    own = model.state_dict()
    tables = {name: words for name, words in tables.items() if name in own}
    if not tables:
        raise ConfigError(f"--embeddings: this model of task {recipe.name!r} has no word embedding to "
                          f"initialise (lm needs --level word and --input embedding)")
    wanted = {w for words in tables.values() for w in words}
    wanted |= {w.lower() for w in wanted}
    dim, vectors = word_vectors_of(source, wanted)
    for name in tables:
        width = own[name].shape[1]
        if width != dim:
            raise ConfigError(f"--embeddings {source}: vectors of {dim} numbers; this model's {name} "
                              f"has {width} (give --embed-size {dim})")
    folded: Dict[str, torch.Tensor] = {}
    for w, v in vectors.items():
        folded.setdefault(w.lower(), v)
    found, new = {}, {}
    for name, words in tables.items():
        t = own[name].clone()
        rows = [(i, vectors.get(w, folded.get(w.lower()))) for i, w in enumerate(words)]
        rows = [(i, v) for i, v in rows if v is not None]
        if rows:
            t[[i for i, _ in rows]] = torch.stack([v for _, v in rows]).to(t.dtype)
        new[name] = t
        found[name] = len(rows)
    if not any(found.values()):
        raise ConfigError(f"--embeddings {source}: none of the model's {len(wanted)} words has a vector "
                          f"there")
    model.load_state_dict({**own, **new})
    (say or print)(f"--embeddings {source}: " + "; ".join(
        f"{found[n]} of {len(tables[n])} words of {n} found" for n in tables))
    return found


def start_model(model: nn.Module, recipe: Recipe, assets, start: Dict[str, str],
                say: Optional[Callable[[str], None]] = None, speak: bool = True) -> None:
    """Apply the starting points ``start`` ({"init_from": RUN_DIR, "embeddings": FILE|RUN_DIR},
    either may be absent) to a freshly built ``model``; ``speak``: say what was loaded."""
    if not isinstance(start, dict) or not all(isinstance(v, str) for v in start.values()):
        raise CheckpointError(f"expected the starting points as {{'init_from': path, 'embeddings': "
                              f"path}}, found {start!r}")
    quiet = say if speak else (lambda message: None)
    if "init_from" in start:
        init_from(model, recipe, assets, start["init_from"], quiet)
    if "embeddings" in start:
        init_embeddings(model, recipe, assets, start["embeddings"], quiet)
