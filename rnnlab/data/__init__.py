"""Data: vocabularies, corpora, and their batching."""
from .corpus import TextCorpus, builtin_text, load_text_corpus, read_text
from .streams import batchify
from .vocabulary import EOS, UNK, Vocabulary, tokenize

__all__ = ["EOS", "UNK", "TextCorpus", "Vocabulary", "batchify", "builtin_text",
           "load_text_corpus", "read_text", "tokenize"]
