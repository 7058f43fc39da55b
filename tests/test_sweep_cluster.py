"""Sweeps on several Ray nodes, all on this machine: a CLI-started two-node cluster joined with
--address, and a node that dies mid-trial (ray.cluster_utils.Cluster)."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from archsearch.sweep import SweepOptions, run_sweep
from archsearch.testing.standin import SyntheticTrainer

RAY = str(Path(sys.executable).with_name("ray"))
TINY = """
name: two_nodes
model: {depth: 2, d_model: 16, n_heads: 2}
patterns: {candidates: ["GA", "AG", "AA", "GG"]}
data: {seq_len: 16, builtin_documents: 60, vocab_size: 300}
training: {tokens: 1280, batch_size: 2, checkpoint_every: 20}
evaluation: {every: 20, validation_tokens: 512, probe_examples: 4, bootstrap: 10, probe_steps: 2,
             probe_len: 32}
objectives: [{metric: semantic_loss}, {metric: copy_loss}]
search: {algorithm: grid, samples: 4, concurrency: 2}
resources: {cpus: 1}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """`ray start ... --block`, returned once the node is up.

    --block keeps `ray start` in the foreground as the parent of the node's processes, in a
    process group of its own: the test stops exactly the nodes it started (`ray stop` would stop
    every Ray process of this user on the machine, other sessions' included).
    """
    with open(log, "w") as out:
        node = subprocess.Popen([RAY, "start", *args, "--num-cpus=1", "--block",
                                 "--disable-usage-stats"], env=env, start_new_session=True,
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while "Ray runtime started" not in log.read_text():
        if node.poll() is not None or time.monotonic() > deadline:
            _stop(node)
            raise AssertionError(f"ray start failed:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)
    return node


def _stop(node: subprocess.Popen) -> None:
    if node.poll() is not None:
        return
    os.killpg(node.pid, signal.SIGTERM)
    try:
        node.wait(timeout=5)  # a worker exits at once; a head can linger for half a minute
    except subprocess.TimeoutExpired:
        os.killpg(node.pid, signal.SIGKILL)
        node.wait()


def test_cli_cluster_with_two_nodes_runs_trials_on_both(tmp_path):
    port = _free_port()
    address = f"127.0.0.1:{port}"
    env = {**os.environ, "RAY_AUTH_MODE": "token"}  # the same on every process of the cluster
    nodes = [_start(["--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                     "--include-dashboard=false"], env, tmp_path / "head.log")]
    try:
        nodes.append(_start([f"--address={address}", "--node-ip-address=127.0.0.1"], env,
                            tmp_path / "worker.log"))
        (tmp_path / "tiny.yaml").write_text(TINY)
        run = subprocess.run([sys.executable, "-m", "archsearch.cli", "sweep", "tiny.yaml",
                              "--address", address, "--storage", str(tmp_path / "sweeps")],
                             cwd=tmp_path, env=env, check=False, capture_output=True, text=True,
                             timeout=300)
    finally:
        for node in reversed(nodes):
            _stop(node)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "4 trials: 4 completed" in run.stdout and "Pareto front" in run.stdout
    trials = pd.read_parquet(tmp_path / "sweeps" / "two_nodes" / "trials.parquet")
    assert trials.node_id.notna().all() and trials.node_ip.notna().all()
    assert trials.node_id.nunique() == 2  # each node has 1 CPU and 2 trials ran at once


NODE_LOSS = """
name: node_loss
model: {depth: 2, d_model: 16, n_heads: 2}
patterns: {candidates: ["GA"]}
training: {tokens: 16000, batch_size: 2, checkpoint_every: 10}
data: {seq_len: 16}
evaluation: {every: 10}
objectives: [{metric: val_loss}]
search: {algorithm: grid, samples: 1, concurrency: 1, max_failures: 2}
"""


def test_a_trial_whose_node_dies_finishes_elsewhere_from_its_checkpoint(tmp_path):
    from ray.cluster_utils import Cluster

    (tmp_path / "space.yaml").write_text(NODE_LOSS)
    trials_file = tmp_path / "sweeps" / "node_loss" / "trials.parquet"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})  # trials on workers
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    removed: dict[str, object] = {}

    def remove_the_trials_node() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                row = pq.read_table(trials_file).to_pylist()[0]
            except (OSError, ValueError, IndexError):
                continue
            if row.get("step", 0) >= 100 and row.get("node_id"):
                node = next(w for w in workers if w.node_id == row["node_id"])
                cluster.remove_node(node, allow_graceful=False)
                removed.update(node_id=row["node_id"], step=row["step"])
                return

    killer = threading.Thread(target=remove_the_trials_node, daemon=True)
    killer.start()
    try:
        outcome = run_sweep(str(tmp_path / "space.yaml"), storage=str(tmp_path / "sweeps"),
                            options=SweepOptions(address=cluster.address),
                            train_fn=SyntheticTrainer(step_seconds=0.01))
    finally:
        cluster.shutdown()
    killer.join(timeout=5)
    assert removed, "the trial's node was never removed"
    row = outcome.rows[0]
    assert row["status"] == "completed" and row["fidelity"] == 1.0
    assert row["failures"] == 1
    assert row["node_id"] != removed["node_id"]  # finished on the surviving node
    # resumed from a checkpoint at or after the step seen before the removal, not from scratch
    assert removed["step"] <= row["resumed_from_step"] < 500


def test_ray_client_address_runs_the_sweep_on_the_cluster(tmp_path):
    port, client_port = _free_port(), _free_port()
    while 10002 <= client_port <= 19999:  # Ray's default worker port range
        client_port = _free_port()
    # The head's Ray Client proxy fork-execs one server per driver while its other threads are
    # inside gRPC; with gRPC's fork handlers on, that child can crash before it execs (Ray issue
    # 63202), and the driver gets "Initialization failure from server". The setting turns the
    # handlers off on the head, as docs/SWEEPS.md tells users to.
    env = {**os.environ, "RAY_AUTH_MODE": "disabled",  # the same on every process
           "GRPC_ENABLE_FORK_SUPPORT": "false"}
    head = _start(["--head", f"--port={port}", f"--ray-client-server-port={client_port}",
                   "--node-ip-address=127.0.0.1", "--include-dashboard=false"], env,
                  tmp_path / "head.log")
    try:
        (tmp_path / "tiny.yaml").write_text(TINY)
        run = subprocess.run([sys.executable, "-m", "archsearch.cli", "sweep", "tiny.yaml",
                              "--address", f"ray://127.0.0.1:{client_port}", "--set",
                              "search.samples=2", "--storage", str(tmp_path / "sweeps"),
                              "--shared-storage-ok"],
                             cwd=tmp_path, env=env, check=False, capture_output=True, text=True,
                             timeout=300)
    finally:
        _stop(head)
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-3000:]
    assert "2 trials: 2 completed" in run.stdout
    trials = pd.read_parquet(tmp_path / "sweeps" / "two_nodes" / "trials.parquet")
    assert set(trials.status) == {"completed"}
