"""Read an offline W&B run's ``run-<id>.wandb`` file back, without an account or the network.

wandb 0.31 dropped its Python reader of these files (``wandb.sdk.internal.datastore``); the
format is small: a 7-byte header (``:W&B``, a 2-byte magic, a version byte), then 32 KiB blocks
of records, each a 7-byte header (checksum, little-endian length, type: 1 whole, 2 first,
3 middle, 4 last piece) and its bytes, with a block's tail shorter than a header left as
padding. The records are ``wandb_internal.Record`` protobufs (``wandb.proto``).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLOCK = 32 * 1024
HEADER = 7
FILE_HEADER = 7
WHOLE, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def record_bytes(path: Path) -> list[bytes]:
    """The serialized records of a ``.wandb`` file, pieces joined."""
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a W&B run file")
    records: list[bytes] = []
    pending = b""
    at = FILE_HEADER
    while at + HEADER <= len(data):
        left_in_block = BLOCK - at % BLOCK
        if left_in_block < HEADER:
            at += left_in_block
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[at:at + HEADER])
        if kind == 0 and length == 0:  # zero padding at the end of a block
            at += left_in_block
            continue
        body = data[at + HEADER:at + HEADER + length]
        at += HEADER + length
        if kind == WHOLE:
            records.append(body)
        elif kind == FIRST:
            pending = body
        elif kind == MIDDLE:
            pending += body
        elif kind == LAST:
            records.append(pending + body)
            pending = b""
    return records


@dataclass
class OfflineRun:
    """What a run file holds: the run's name and config, its history rows and final summary."""

    run_id: str = ""
    name: str = ""
    project: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    finished: bool = False


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


def read_offline_run(path: Path) -> OfflineRun:
    """Parse ``path`` (a ``run-<id>.wandb`` file) into an ``OfflineRun``."""
    from wandb.proto import wandb_internal_pb2

    run = OfflineRun()
    for raw in record_bytes(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id, run.name = record.run.run_id, record.run.display_name
            run.project = record.run.project
        elif kind == "history":
            run.history.append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            run.summary.update({_key(i): json.loads(i.value_json) for i in record.summary.update})
        elif kind == "exit":
            run.finished = True
    return run
