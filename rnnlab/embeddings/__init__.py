"""Learning projections of one-hot words: CBOW and skip-gram with negative sampling, and the
tools that read any embedding (nearest neighbours, PCA pictures, group checks)."""
from .analysis import (PTB_GROUPS, QUERY_WORDS, group_precision, nearest, neighbour_overlap,
                       neighbours, pca_2d, query_neighbours)
from .negative_sampling import (NegativeSamplingLoss, keep_probabilities, negative_sampling_loss,
                                noise_distribution)
from .pictures import plot_projection, projection_points
from .word2vec import METHODS, WordVectors, WordVectorsConfig

__all__ = ["METHODS", "NegativeSamplingLoss", "PTB_GROUPS", "QUERY_WORDS", "WordVectors",
           "WordVectorsConfig", "group_precision", "keep_probabilities", "nearest",
           "negative_sampling_loss", "neighbour_overlap", "neighbours", "noise_distribution",
           "pca_2d", "plot_projection", "projection_points", "query_neighbours"]
