"""storyterm: a terminal co-writing assistant driven by a genre-conditioned causal language model."""

__version__ = "0.1.0"
