"""--set overrides and the multi-node storage check: user errors, one line each (no Ray needed)."""

from pathlib import Path

import pytest
import yaml

from archsearch.sweep.cluster import ClusterError, Connection, NodeInfo, check_storage, is_uri
from archsearch.sweep.overrides import (
    OverrideError,
    apply_overrides,
    load_with_overrides,
    parse_override,
)

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "search_spaces/quickstart.yaml"


def test_overrides_reach_any_field_with_yaml_values():
    space, text = load_with_overrides(QUICKSTART, [
        "training.tokens=1000", "search.samples=3", "model.d_model={choices: [32, 64]}",
        "objectives.1.metric=val_loss", "search.asha.metric=semantic_loss",
    ])
    spec = space.spec
    assert spec.training.tokens == 1000 and spec.search.samples == 3
    # the quickstart tunes the seed itself (two seeds per pattern); d_model comes from --set
    assert [t.name for t in space.tunables] == ["model.d_model", "training.seed"]
    assert spec.objectives[1].metric == "val_loss"
    assert spec.search.asha is not None and spec.search.asha.metric == "semantic_loss"
    assert yaml.safe_load(text)["training"]["tokens"] == 1000  # the text the sweep stores


def test_no_override_keeps_the_file_text():
    _, text = load_with_overrides(QUICKSTART, [])
    assert text == QUICKSTART.read_text()


@pytest.mark.parametrize("override, message", [
    ("training.tokens=lots", "--set training.tokens=lots: training.tokens: expected an integer"),
    ("training.tokns=5", ("--set training.tokns=5: training.tokns: unknown key 'tokns'; "
                          "did you mean 'tokens'?")),
    ("search.samples=0", "--set search.samples=0: search.samples: must be at least 1"),
    ("model.d_model={choices: []}", ("--set model.d_model={choices: []}: model.d_model: "
                                     "'choices' needs a non-empty list")),
    ("objectives.0.metric=semantc_loss", "did you mean 'semantic_loss'?"),
])
def test_invalid_overrides_are_validated_like_the_file_and_named(override, message):
    with pytest.raises(Exception) as info:
        load_with_overrides(QUICKSTART, [override])
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(f"--set {override}")


@pytest.mark.parametrize("text, message", [
    ("training.tokens", "expected key=value"),
    ("=3", "expected key=value"),
    ("training..tokens=3", "not a dotted field path"),
    ("model.d_model={choices: [1, 2", "not valid YAML"),
])
def test_malformed_overrides(text, message):
    with pytest.raises(OverrideError, match=message):
        parse_override(text)


def test_override_paths_through_scalars_and_lists_are_refused():
    raw = {"training": {"tokens": 5}, "objectives": [{"metric": "val_loss"}]}
    with pytest.raises(OverrideError, match="training.tokens is not a mapping"):
        apply_overrides(raw, [parse_override("training.tokens.x=1")])
    with pytest.raises(OverrideError, match="objectives has 1 items"):
        apply_overrides(raw, [parse_override("objectives.3.metric=copy_loss")])
    merged = apply_overrides(raw, [parse_override("objectives.1={metric: copy_loss}")])
    assert merged["objectives"][1] == {"metric": "copy_loss"} and raw["objectives"] == [
        {"metric": "val_loss"}]  # the original is untouched


def test_a_file_error_not_caused_by_an_override_keeps_its_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\npatterns: {candidates: [GA]}\ntraining: {lr: fast}\n")
    with pytest.raises(Exception, match=r"bad.yaml:3: training.lr: expected a number"):
        load_with_overrides(bad, ["search.samples=2"])


# ---------------------------------------------------------------- storage on a cluster

TWO_NODES = Connection("10.0.0.1:6379", (NodeInfo("a", "10.0.0.1", 8, 0),
                                         NodeInfo("b", "10.0.0.2", 8, 0)))
ONE_NODE = Connection("local", (NodeInfo("a", "10.0.0.1", 8, 0),))


def _never(*args):
    raise AssertionError("the probe should not run")


def test_node_local_storage_is_refused_on_a_multi_node_cluster(tmp_path):
    blind = lambda folder, token, nodes: [nodes[1]]  # node b cannot read the token
    with pytest.raises(ClusterError) as info:
        check_storage(str(tmp_path / "sweeps"), TWO_NODES, shared_ok=False, probe=blind)
    message = str(info.value)
    assert "not visible from node(s) 10.0.0.2" in message and "\n" not in message
    assert "--shared-storage-ok" in message


def test_relative_storage_is_refused_on_a_multi_node_cluster():
    with pytest.raises(ClusterError, match="relative local path"):
        check_storage("sweeps", TWO_NODES, shared_ok=False, probe=_never)


def test_storage_that_passes():
    seen = lambda folder, token, nodes: []  # every node read the token
    check_storage("/shared/sweeps", TWO_NODES, shared_ok=False, probe=seen)
    check_storage("s3://bucket/sweeps", TWO_NODES, shared_ok=False, probe=_never)
    check_storage("/local/sweeps", TWO_NODES, shared_ok=True, probe=_never)
    check_storage("sweeps", ONE_NODE, shared_ok=False, probe=_never)  # single machine
    assert is_uri("gs://b/x") and not is_uri("file:///tmp/x") and not is_uri("/tmp/x")


# ---------------------------------------------------------------- joining a cluster


@pytest.mark.parametrize(("raised", "expected"), [
    # Ray Client's report of a failure on the head: its server's traceback follows the first line
    (ConnectionAbortedError("Initialization failure from server:\nTraceback (most recent call "
                            "last):\n  File \"proxier.py\", line 768, in Datapath\nRuntimeError: "
                            "Starting Ray client server failed. See ray_client_server_23000.err "
                            "for detailed logs.\n"),
     "Initialization failure from server: RuntimeError: Starting Ray client server failed."),
    (ConnectionAbortedError("Initialization failure from server:\nCall to `ray.init()` on the "
                            "server failed with: token mismatch"),
     "Initialization failure from server: Call to `ray.init()` on the server failed with: token"),
    (ConnectionError("ray client connection timeout\nmore detail"),
     "ray client connection timeout"),
    (RuntimeError(""), "RuntimeError"),
])
def test_a_refused_connection_says_why_in_one_line(monkeypatch, raised, expected):
    import ray

    from archsearch.sweep import cluster

    def refuse(**kwargs):
        raise raised

    monkeypatch.setattr(cluster, "_check_reachable", lambda address: None)
    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(ClusterError) as info:
        cluster.connect("ray://127.0.0.1:10001", verbose=False)
    message = str(info.value)
    assert message.startswith("cannot start or join the Ray cluster at ray://127.0.0.1:10001: ")
    assert expected in message and "\n" not in message
    # only the server process dying on the head points at the head's setting
    assert ("GRPC_ENABLE_FORK_SUPPORT=false" in message) == ("Starting Ray" in expected)
