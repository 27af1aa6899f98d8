"""The tasks ``--task`` selects: each a :class:`~rnnlab.tasks.recipe.Recipe` in its own module,
imported on first use (see docs/writing-a-task.md)."""
from __future__ import annotations

import importlib

from ..errors import check_choice

#: task name -> "module:attribute" of its recipe, in the order of the notes' input-output structures
TASKS = {
    "lm": "rnnlab.tasks.language_modelling:RECIPE",
    "classify": "rnnlab.tasks.classification:RECIPE",
    "tag": "rnnlab.tasks.tagging:RECIPE",
    "ctc": "rnnlab.tasks.ctc:RECIPE",
    "translate": "rnnlab.tasks.translation:RECIPE",
    "caption": "rnnlab.tasks.captioning:RECIPE",
    "forecast": "rnnlab.tasks.forecasting:RECIPE",
    "music": "rnnlab.tasks.music:RECIPE",
    "adding": "rnnlab.tasks.long_memory:ADDING",
    "copy": "rnnlab.tasks.long_memory:COPY",
    "sequence-copy": "rnnlab.tasks.sequence_copy:RECIPE",
    "expressions": "rnnlab.tasks.expressions:RECIPE",
    "tree": "rnnlab.tasks.trees:RECIPE",
    "word2vec": "rnnlab.tasks.word_vectors:RECIPE",
    "bars": "rnnlab.tasks.bar_images:RECIPE",
}


def get_recipe(name: str):
    """The recipe of task ``name``; a ConfigError naming the tasks if there is none."""
    check_choice("task", name, TASKS)
    module, _, attribute = TASKS[name].partition(":")
    return getattr(importlib.import_module(module), attribute)
