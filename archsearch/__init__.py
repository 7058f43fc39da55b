"""archsearch: choose how to mix attention and Gated DeltaNet layers with cheap proxy models."""

__version__ = "0.1.0"
