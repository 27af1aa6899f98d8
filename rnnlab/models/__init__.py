"""Models: layers wired into the notes' input-output structures."""
from .language_model import LanguageModel, LanguageModelConfig

__all__ = ["LanguageModel", "LanguageModelConfig"]
