"""The Optuna journal of a sweep: checked before Optuna reads it, opened with a time limit.

The journal (``optuna.journal``, JSON lines, readable by optuna-dashboard) is Optuna's record of
every trial: its parameters, state, values and user attributes. A driver killed while appending a
record leaves a torn last line; Optuna then fails on the next append, and with it every resume.
``repair_journal`` drops such a record (only the last one: a bad record earlier means the file
was damaged some other way, and guessing would lose trials), keeping the original file beside it.
``open_study`` loads the study in a worker thread and gives up after a time limit, so no verb
can hang on a bad journal.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from archsearch.atomic import atomic_write_bytes
from archsearch.errors import ArchsearchError
from archsearch.sweep.trainable import FAILURE, META

STUDY_NAME = "archsearch"
_FAILURE_KEY = f"{META}/{FAILURE}"  # Tune flattens nested results with "/"
ABANDONED = "abandoned"  # user attribute: asked, but could never run (``abandon``)
OPEN_TIMEOUT_S = 60.0


class JournalError(ArchsearchError):
    """The journal is damaged beyond its last record, or cannot be read in time."""


def journal_storage(path: Path) -> Any:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def repair_journal(path: Path) -> str | None:
    """Drop a torn or corrupt last record; returns a warning naming it, or None if intact.

    Also removes Optuna's lock file, which a killed driver leaves behind (the caller holds the
    sweep folder's lock, so no other process can be writing).
    """
    Path(f"{path}.lock").unlink(missing_ok=True)
    if not path.is_file():
        return None
    data = path.read_bytes()
    lines = data.split(b"\n")
    records = lines[:-1] + ([lines[-1]] if lines[-1] else [])  # a last line without \n is torn
    bad = [i for i, line in enumerate(records) if not _is_record(line)]
    torn = bool(lines[-1])
    if not bad and not torn:
        return None
    if bad and bad[0] < len(records) - 1:
        raise JournalError(f"{path}: record {bad[0] + 1} of {len(records)} is not a valid Optuna "
                           f"journal record ({_preview(records[bad[0]])}); only a torn last record "
                           f"can be dropped safely; restore the journal from a copy")
    keep = b"".join(line + b"\n" for line in records[:-1])
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    original = path.with_name(f"{path.name}.torn-{stamp}")
    original.write_bytes(data)
    atomic_write_bytes(path, keep)
    return (f"{path}: dropped its torn last record (record {len(records)}: "
            f"{_preview(records[-1])}); the original file is kept as {original.name}")


def open_study(path: Path, modes: Sequence[str], sampler: Any,
               timeout: float = OPEN_TIMEOUT_S) -> Any:
    """The sweep's Optuna study (created if new), or a one-line ``JournalError``.

    ``modes`` are the objectives' "min" / "max", in order.
    """
    import optuna

    directions = ["minimize" if m == "min" else "maximize" for m in modes]
    outcome: dict[str, Any] = {}

    def load() -> None:
        quiet = logging.getLogger("optuna")  # not "A new study created in Journal ..."
        level = quiet.level
        quiet.setLevel(logging.WARNING)
        try:
            outcome["study"] = optuna.create_study(
                study_name=STUDY_NAME, storage=journal_storage(path), sampler=sampler,
                directions=directions, load_if_exists=True)
        except Exception as err:  # noqa: BLE001 - any failure becomes the one-line error below
            outcome["error"] = err
        finally:
            quiet.setLevel(level)

    worker = threading.Thread(target=load, name="archsearch-journal", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise JournalError(f"{path}: reading the Optuna journal took more than {timeout:g} s; "
                           f"is it on a stalled filesystem?")
    if "error" in outcome:
        err = outcome["error"]
        first = (str(err).strip().splitlines() or [""])[0]
        raise JournalError(f"{path}: the Optuna journal cannot be read "
                           f"({type(err).__name__}: {first})")
    study = outcome["study"]
    wanted = [d.upper() for d in directions]
    have = [d.name for d in study.directions]
    if have != wanted:
        raise JournalError(f"{path}: the study optimises {have}, but the space's objectives ask "
                           f"for {wanted}")
    return study


def trial_key(number: int, user_attrs: Mapping[str, Any]) -> str:
    """The stable id of Optuna trial ``number``: ``t0003``, or its ``trial_id`` user attribute
    (a retried trial keeps its id under a new Optuna trial)."""
    return str(user_attrs.get("trial_id") or f"t{number:04d}")


def tell(study: Any, number: int, metrics: list[str], result: dict | None,
         error: bool = False) -> None:
    """Record how Optuna trial ``number`` ended; a no-op if it is already finished.

    Its objective values; or FAIL if it errored, diverged (``meta.failed``) or has no finite
    value for every objective (never COMPLETE with whatever it reported last). ``fidelity`` (the
    budget fraction reached) and, for a FAIL, ``error`` and ``retryable`` (an error, not a
    divergence) are user attributes.
    """
    import optuna
    from optuna.trial import TrialState

    frozen = study._storage.get_trial(_internal_id(study, number))
    if frozen.state.is_finished():
        return
    handle = optuna.trial.Trial(study, frozen._trial_id)
    result = result or {}
    if "fidelity" in result:
        handle.set_user_attr("fidelity", float(result["fidelity"]))
    values = [result.get(m) for m in metrics]
    usable = all(isinstance(v, int | float) and math.isfinite(v) for v in values)
    if error or _FAILURE_KEY in result or FAILURE in (result.get(META) or {}) or not usable:
        reason = result.get(_FAILURE_KEY) or (result.get(META) or {}).get(FAILURE)
        if reason:
            handle.set_user_attr("error", str(reason)[:500])
        handle.set_user_attr("retryable", bool(error))
        study.tell(number, state=TrialState.FAIL)
        return
    study.tell(number, values=[float(v) for v in values])


def abandon(study: Any, number: int, why: str) -> None:
    """Record Optuna trial ``number`` as FAIL for good: it was asked but can never run (``why``).
    Plans leave abandoned trials out of the sweep's count (``is_abandoned``)."""
    import optuna
    from optuna.trial import TrialState

    handle = optuna.trial.Trial(study, _internal_id(study, number))
    handle.set_user_attr(ABANDONED, True)
    handle.set_user_attr("error", why[:500])
    handle.set_user_attr("retryable", False)
    study.tell(number, state=TrialState.FAIL)


def is_abandoned(frozen: Any) -> bool:
    return bool(frozen.user_attrs.get(ABANDONED))


def _internal_id(study: Any, number: int) -> int:
    return study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)


def _is_record(line: bytes) -> bool:
    try:
        record = json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return False
    return isinstance(record, dict) and "op_code" in record


def _preview(line: bytes, width: int = 60) -> str:
    text = line.decode("utf-8", errors="replace")
    return repr(text[:width] + ("..." if len(text) > width else ""))
