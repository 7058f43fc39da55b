"""The probe registry: synthetic tasks a trained proxy is fine-tuned on, then scored on.

Adding a probe is one file and one line: write ``probes/<name>.py`` defining a ``Probe``
subclass with ``name = "<name>"``, its answer set (``candidates``) and ``PROBE = ThatClass``,
then append ``"<name>"`` to ``archsearch.metrics.PROBE_NAMES``. Append only: the order fixes each probe's
task-marker id (see ``base.py``). The metrics ``probe_<name>_acc`` (and its splits, chance and
informative flag) then appear for every run that lists it in ``data.probes``; ``tuning.py`` is
the protocol that trains and scores them.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from archsearch.data.probes.base import (
    BLOCK_SIZE,
    IGNORE,
    MAX_PROBES,
    Probe,
    ProbeSequence,
    ProbeVocab,
)
from archsearch.errors import ArchsearchError
from archsearch.metrics import PROBE_NAMES

PROBE_MODULES: tuple[str, ...] = PROBE_NAMES  # the list lives with the other names a user writes

__all__ = [
    "BLOCK_SIZE",
    "IGNORE",
    "PROBE_MODULES",
    "Probe",
    "ProbeSequence",
    "ProbeVocab",
    "build_probes",
    "probe_classes",
    "probe_vocab",
]


def probe_classes() -> dict[str, type[Probe]]:
    """Every registered probe class by name, in registry order."""
    if len(PROBE_MODULES) > MAX_PROBES:
        raise RuntimeError(f"at most {MAX_PROBES} probes fit the reserved id block")
    out: dict[str, type[Probe]] = {}
    for module in PROBE_MODULES:
        cls = importlib.import_module(f"archsearch.data.probes.{module}").PROBE
        if cls.name != module:
            raise RuntimeError(f"probe module {module} defines probe named {cls.name!r}")
        out[cls.name] = cls
    return out


def probe_vocab(base: int) -> ProbeVocab:
    """The reserved id block starting at ``base`` (the text vocabulary size)."""
    return ProbeVocab(base=base, probe_names=PROBE_MODULES)


def build_probes(names: Sequence[str], vocab: ProbeVocab, max_len: int) -> dict[str, Probe]:
    """Instances of the named probes (``data.probes``) with default difficulty for instances of
    at most ``max_len`` tokens (``evaluation.probe_len``)."""
    classes = probe_classes()
    out: dict[str, Probe] = {}
    for name in names:
        if name not in classes:
            raise ArchsearchError(
                f"data.probes: unknown probe {name!r} (known: {', '.join(classes)})")
        if name in out:
            raise ArchsearchError(f"data.probes: probe {name!r} listed twice")
        out[name] = classes[name](vocab, max_len)
    return out
