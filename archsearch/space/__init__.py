"""YAML search spaces: schema, loader, and the Optuna define-by-run space built from them."""

from archsearch.space.space import Candidate, SearchSpace, Tunable
from archsearch.space.trial import MatchResult, TrialConfig

__all__ = ["Candidate", "MatchResult", "SearchSpace", "TrialConfig", "Tunable"]
