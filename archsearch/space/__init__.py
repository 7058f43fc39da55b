"""YAML search spaces: schema, loader, and the Optuna define-by-run space built from them."""

from archsearch.space.space import Candidate, SearchSpace, TrialConfig, Tunable

__all__ = ["Candidate", "SearchSpace", "TrialConfig", "Tunable"]
