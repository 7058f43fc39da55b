"""Stable seeds derived from names: the one source of randomness for the data package.

Every random choice takes a seed; to give each document, probe and training step its own
independent stream without global state, seeds are derived by hashing their parts. Python's
``hash()`` is salted per process, so blake2b is used: the same parts give the same seed on any
machine and in any process (the stream and the split must agree across Ray workers).
"""

from __future__ import annotations

import hashlib
import json
import random

import numpy as np


def derive_seed(*parts: object) -> int:
    """A 63-bit seed determined by ``parts`` (ints, strings, floats, tuples of these)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.blake2b(blob, digest_size=8).digest(), "little") >> 1


def py_rng(*parts: object) -> random.Random:
    """A ``random.Random`` seeded from ``parts`` (fast for scalar draws in Python loops)."""
    return random.Random(derive_seed(*parts))


def np_rng(*parts: object) -> np.random.Generator:
    """A numpy ``Generator`` seeded from ``parts`` (for vectorised draws)."""
    return np.random.default_rng(derive_seed(*parts))


def unit_hash(*parts: object) -> float:
    """A number in [0, 1) determined by ``parts``: a seeded coin that needs no generator."""
    return derive_seed(*parts) / float(1 << 63)
