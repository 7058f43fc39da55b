"""Connecting to Ray: a private single-machine instance by default, or an existing cluster.

Single machine: ``ray.init(address="local")`` starts a fresh Ray owned by this process even when
a CLI-started cluster is running (a plain ``ray.init()`` would silently join that one), with
every CPU, no dashboard and a small object store (trials exchange only metrics and checkpoint
paths), so it fits a 2-core laptop. It listens on the loopback interface only: Ray picks the
loopback address as the node address where it does not expect a cluster (macOS, Windows), and
``_loopback_only`` asks for that choice on Linux too; every Ray server then binds to that
address. A ``Watchdog`` ends its processes when the driver ends, even by SIGKILL.
``--address`` joins a cluster started with ``ray start``: that cluster's own settings decide
what it exposes (docs/SWEEPS.md).

A multi-node sweep writes checkpoints and results from every node, so its storage must be
shared. ``check_storage`` proves a local path is shared by writing a random token into it and
reading it back from a task pinned to every live node; a URI (s3://, gs://, ...) is shared by
construction.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archsearch.environ import environment
from archsearch.errors import ArchsearchError
from archsearch.sweep.watchdog import Watchdog

OBJECT_STORE_BYTES = 200 * 1024**2
PROBE_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 5.0

# Environment Ray Tune reads while a sweep runs (see ``ray_environment``).
_QUIET_TUNE_ENV = {
    "RAY_AIR_NEW_OUTPUT": "0",  # the legacy engine honours verbose=0: no tables at all
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # parquet is our record; no CSV/JSON/TBX files
    # Save the experiment state often: a driver killed between two saves loses the trials
    # started since the last one (they are re-run on resume), so keep that window short.
    "TUNE_GLOBAL_CHECKPOINT_S": "2",
    "TUNE_WARN_INSUFFICENT_RESOURCE_THRESHOLD_S": "600",  # our own resource check runs first
    # Ctrl-C raises KeyboardInterrupt at once instead of Tune's slow "graceful" stop, which
    # saves Ray's experiment state: resume never reads that state (runner.py), so there is
    # nothing to wait for. The runner then shuts Ray down and the folder stays resumable.
    "TUNE_DISABLE_SIGINT_HANDLER": "1",
}
# Ray chooses the loopback address as a node's address when this is "0" (it is how Ray runs on
# macOS and Windows); every Ray server then listens on loopback only.
_CLUSTER_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# Ray Client's message when the head could not set up a server for the driver; the head's own
# errors when that server process died as it started (a known Ray bug, avoided by a setting on
# the head: docs/SWEEPS.md, "Clusters").
_CLIENT_INIT_FAILED = "Initialization failure from server"
_SERVER_DIED = ("Starting Ray client server failed", "ZombieProcess")
_NO_GRPC_FORK_HANDLERS = "GRPC_ENABLE_FORK_SUPPORT=false"


class ClusterError(ArchsearchError):
    """Ray cannot be started or joined, or cannot run the sweep as configured."""


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    ip: str
    cpus: float
    gpus: float


@dataclass(frozen=True)
class Connection:
    address: str  # "local" or what the user passed
    nodes: tuple[NodeInfo, ...]

    @property
    def multi_node(self) -> bool:
        return len(self.nodes) > 1

    @property
    def is_client(self) -> bool:
        return self.address.startswith("ray://")


@contextlib.contextmanager
def ray_session(address: str | None, verbose: bool) -> Iterator[Connection]:
    """Ray for the ``with`` block: a private local Ray (``address`` None), or a running cluster
    joined as auto / HOST:PORT / ray://HOST:PORT. Ray is shut down when the block ends, and a
    private Ray's processes are ended even if this process is killed (``Watchdog``)."""
    watchdog = Watchdog.start() if address is None else None
    try:
        yield connect(address, verbose)
    finally:
        disconnect()
        if watchdog is not None:
            watchdog.stop()


def connect(address: str | None, verbose: bool) -> Connection:
    """Start a private local Ray (``address`` None) or join auto / HOST:PORT / ray://HOST:PORT."""
    import ray

    quiet = logging.INFO if verbose else logging.ERROR
    if address not in (None, "auto"):
        _check_reachable(address)
    try:
        if address is None:
            with _loopback_only():
                ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False,
                         object_store_memory=OBJECT_STORE_BYTES, log_to_driver=verbose,
                         logging_level=quiet)
        else:
            ray.init(address=address, log_to_driver=verbose, logging_level=quiet)
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = "a local Ray instance" if address is None else f"the Ray cluster at {address}"
        raise ClusterError(f"cannot start or join {where}: {_reason(err)}") from None
    if not verbose:
        _silence_ray_loggers()
    return Connection(address or "local", tuple(live_nodes()))


def _reason(err: BaseException) -> str:
    """Why Ray refused, in one line.

    Ray Client reports a failure on the head as "Initialization failure from server:" followed
    by the head's traceback, whose last line is the reason: it is kept too.
    """
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    if not lines[0].startswith(_CLIENT_INIT_FAILED) or len(lines) == 1:
        return lines[0]
    reason = f"{lines[0]} {lines[-1]}"
    if any(marker in lines[-1] for marker in _SERVER_DIED):
        reason += (" (the head's Ray Client server process for this driver died as it started: "
                   f"start the head with {_NO_GRPC_FORK_HANDLERS}, see docs/SWEEPS.md)")
    return reason


@contextlib.contextmanager
def _loopback_only() -> Iterator[None]:
    """While Ray starts: loopback as the node address (inherited by every Ray process)."""
    from ray._private import ray_constants

    saved_flag = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False  # read at call time by Ray's node-address lookup
    try:
        with environment({_CLUSTER_SWITCH: "0"}):
            yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag


def _check_reachable(address: str) -> None:
    """Fail in seconds, in one line, where ray.init would retry a dead address for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as err:
        raise ClusterError(f"no Ray cluster answers at {address} ({err.strerror or err}); start "
                           f"one with 'ray start --head' or check the address") from None


def disconnect() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def live_nodes() -> list[NodeInfo]:
    import ray

    return [NodeInfo(n["NodeID"], n["NodeManagerAddress"], n["Resources"].get("CPU", 0.0),
                     n["Resources"].get("GPU", 0.0))
            for n in ray.nodes() if n.get("Alive")]


def check_resources(connection: Connection, cpus: float, gpus: float) -> None:
    """Refuse a per-trial request that no node can ever satisfy (Ray would wait forever)."""
    if not any(n.cpus >= cpus and n.gpus >= gpus for n in connection.nodes):
        have = ", ".join(f"{n.ip}: {n.cpus:g} CPU {n.gpus:g} GPU" for n in connection.nodes)
        raise ClusterError(f"a trial needs {cpus:g} CPU and {gpus:g} GPU but no node has that "
                           f"({have}); lower resources.cpus / resources.gpus")


def is_uri(storage: str) -> bool:
    """True for a remote URI (s3://, gs://, ...); a plain path or file:// is local."""
    return "://" in storage and not storage.startswith("file://")


Probe = Callable[[str, str, list[NodeInfo]], list[NodeInfo]]


def check_storage(storage: str, connection: Connection, shared_ok: bool,
                  probe: Probe | None = None) -> None:
    """Refuse node-local storage on a multi-node cluster, in one line.

    A URI passes; so does a path every live node can read (proven by ``probe``) or one the user
    vouches for with ``--shared-storage-ok``. A Ray Client driver (``ray://``) runs the sweep on
    the cluster, so even one node must see the path.
    """
    if is_uri(storage) or shared_ok or not (connection.multi_node or connection.is_client):
        return
    folder = Path(storage)
    if not folder.is_absolute():
        raise ClusterError(f"storage '{storage}' is a relative local path; a multi-node sweep "
                           f"needs shared storage: an absolute path on a shared filesystem or a "
                           f"URI such as s3://bucket/sweeps")
    blind = (probe or probe_nodes)(str(folder), secrets.token_hex(16), list(connection.nodes))
    if blind:
        names = ", ".join(n.ip for n in blind)
        raise ClusterError(f"storage '{storage}' is not visible from node(s) {names}; use a "
                           f"shared folder or a URI (s3://, gs://, ...), or pass "
                           f"--shared-storage-ok if it is shared")


def probe_nodes(folder: str, token: str, nodes: list[NodeInfo]) -> list[NodeInfo]:
    """The nodes that cannot read a token file written here into ``folder``."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    marker = Path(folder) / f".archsearch-probe-{token[:8]}"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(token)
    try:
        read = ray.remote(num_cpus=0)(_read_text)
        futures = {n.node_id: read.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            n.node_id, soft=False)).remote(str(marker)) for n in nodes}
        ready, _ = ray.wait(list(futures.values()), num_returns=len(futures),
                            timeout=PROBE_TIMEOUT_S)
        seen = {node: ray.get(f) if f in ready else None for node, f in futures.items()}
    finally:
        marker.unlink(missing_ok=True)
    return [n for n in nodes if seen.get(n.node_id) != token]


def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


@contextlib.contextmanager
def ray_environment(verbose: bool) -> Iterator[None]:
    """Set the variables Tune reads during ``fit`` and put the caller's values back after.

    Variables the user set are left alone.
    """
    wanted = dict(_QUIET_TUNE_ENV)
    if not verbose:  # a failed trial's traceback is in its error file; the summary names it
        wanted["TUNE_PRINT_ALL_TRIAL_ERRORS"] = "0"
    with environment({k: v for k, v in wanted.items() if k not in os.environ}):
        yield


def _silence_ray_loggers() -> None:
    # Ray Tune logs resource hints and state-sync notices at WARNING; the progress line and the
    # final summary say what matters. Errors stay visible, except "Trials did not complete",
    # which the summary says better (--verbose leaves everything on).
    for name in ("ray", "ray.train", "ray.data", "ray.tune", "optuna"):
        logging.getLogger(name).setLevel(logging.ERROR)
    tune_logger = logging.getLogger("ray.tune.tune")  # filters apply where the record is made
    if not any(isinstance(f, _SummarySaysIt) for f in tune_logger.filters):
        tune_logger.addFilter(_SummarySaysIt())


class _SummarySaysIt(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Trials did not complete")


def node_context() -> dict[str, Any]:
    """Where the calling trial runs (recorded per trial in the results)."""
    import ray

    context = ray.get_runtime_context()
    return {"node_id": context.get_node_id(), "node_ip": ray.util.get_node_ip_address()}
