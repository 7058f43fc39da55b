"""Bad input, as a new user would write it: every case fails at once with the project's one-line
error (or works), never with a traceback, a hang, or a trial that fails later.

Five classes (issue 15, "Bad input and faults"): spaces that ``validate`` used to accept and
whose trials then failed; inputs that raised tracebacks; inputs that hung; CLI misuses; and
corpora with overlong lines. Each known case is a row of a table below, and generators
(hypothesis) draw many more of each class.
The oracles are real: a space that validates must build every candidate's model and run it
forward, and its data settings must prepare (``prepare_data`` on a tiny built-in corpus).
Nothing here starts Ray or trains.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archsearch.cli import main
from archsearch.data import evaluate
from archsearch.data.prepare import prepare_data
from archsearch.data.probes import BLOCK_SIZE
from archsearch.errors import ArchsearchError
from archsearch.model import HybridLM
from archsearch.pattern import parse
from archsearch.pattern.grammar import MAX_GROUPS, MAX_LAYERS
from archsearch.space import SearchSpace
from archsearch.space.build import hybrid_config
from archsearch.space.loader import MAX_NESTING
from archsearch.space.rules import PROBE_BLOCK

BASE = {
    "name": "tiny",
    "model": {"depth": 2, "d_model": 32, "n_heads": 2, "mlp_ratio": 2.0},
    "symbols": {"G": {"kind": "gdn", "head_dim_k": 8, "expand_v": 2.0}},
    "patterns": {"candidates": ["AG"]},
    "data": {"corpus": "builtin", "builtin_documents": 40, "vocab_size": 300, "seq_len": 32,
             "probes": ["parity"]},
    "training": {"tokens": 256, "batch_size": 4, "precision": "fp32"},
    "evaluation": {"every": 2, "validation_tokens": 256, "probe_examples": 4, "bootstrap": 5,
                   "probe_len": 32},
    "objectives": [{"metric": "val_loss"}],
    "search": {"algorithm": "random", "samples": 1, "concurrency": 1},
}


def _space_text(patch: dict) -> str:
    tree = yaml.safe_load(yaml.safe_dump(BASE))

    def merge(into: dict, extra: dict) -> None:
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = value
    merge(tree, patch)
    return yaml.safe_dump(tree, sort_keys=False)


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """A hang becomes a test failure (SIGALRM: the tests run in the main thread)."""
    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s: a hang")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _rejected(text: str, file: str = "bad.yaml") -> str:
    """The one-line error of a space that must be rejected."""
    with time_limit(30), pytest.raises(ArchsearchError) as info:
        SearchSpace.from_text(text, file)
    message = str(info.value)
    assert message.startswith(file), message
    return message


# ---------------------------------------------------------------- accepted, then failed later

# (patch, what the one-line error says): each one used to pass `validate` and fail (or quietly
# misbehave) in every trial
ACCEPTED_THEN_FAILED = {
    "heads do not divide d_model": ({"model": {"n_heads": 3}},
                                    "model: 3 heads do not divide d_model 32"),
    "kv_heads do not divide heads": ({"model": {"n_heads": 4, "n_kv_heads": 3}},
                                     "groups of 3 kv_heads"),
    "odd head width with rope": ({"symbols": {"A": {"kind": "attention", "head_dim": 9}}},
                                 "symbols.A: the attention head width 9 is odd"),
    "heads larger than d_model": ({"model": {"n_heads": 64}},
                                  "64 heads do not divide d_model 32"),
    "GDN v_heads not a multiple": ({"symbols": {"G": {"kind": "gdn", "heads": 2, "v_heads": 3}}},
                                   "symbols.G: GDN v_heads 3 is not a multiple of its 2"),
    "seq_len 1": ({"data": {"seq_len": 1}}, "data.seq_len: must be at least 16"),
    "vocab_size 1": ({"data": {"vocab_size": 1}}, "data.vocab_size: a byte-level BPE needs"),
    "model vocabulary below the data's": ({"model": {"vocab_size": 50}},
                                          "model.vocab_size: must be at least 452"),
    "builtin_documents 1": ({"data": {"builtin_documents": 1}},
                            "data.builtin_documents: must be at least 2"),
    "validation_fraction 0": ({"data": {"validation_fraction": 0}},
                              "data.validation_fraction: must be in (0, 1)"),
    "unknown probe": ({"data": {"probes": ["parityy"]}}, "did you mean 'parity'?"),
    "probe twice": ({"data": {"probes": ["parity", "parity"]}}, "'parity' is listed twice"),
    "unknown category": ({"evaluation": {"categories": ["contnt"]}}, "did you mean 'content'?"),
    "unsorted copy buckets": ({"evaluation": {"copy_buckets": [8, 4]}},
                              "evaluation.copy_buckets: must be positive run lengths"),
    "negative copy bucket": ({"evaluation": {"copy_buckets": [0, -1]}},
                             "evaluation.copy_buckets"),
    "copy bucket below copy_min_run": ({"evaluation": {"copy_buckets": [2, 8]}},
                                       "below copy_min_run 4"),
    "missing corpus": ({"data": {"corpus": "/nonexistent/corpus.txt"}},
                       "data.corpus: no such file or folder"),
    "corpus glob matching nothing": ({"data": {"corpus": "/nonexistent/*.txt"}},
                                     "data.corpus: no file matches"),
    "missing tokenizer": ({"data": {"tokenizer": "/nonexistent/tok.json"}},
                          "data.tokenizer: no such tokenizer file"),
    "negative seed": ({"training": {"seed": -1}}, "training.seed: must be in [0, 2**32)"),
    "negative seed in a choice": ({"data": {"seed": {"choices": [0, -3]}}}, "data.seed"),
    "negative ASHA grace": ({"search": {"asha": {"grace_period": -1}}},
                            "search.asha.grace_period: must be at least 1"),
    "GPU step of 2.5 GPUs": ({"resources": {"gpus_by_params": [{"up_to_params": 10,
                                                                 "gpus": 2.5}]}},
                             "resources.gpus_by_params[0].gpus"),
    "GPU step of no size": ({"resources": {"gpus_by_params": [{"up_to_params": -5,
                                                               "gpus": 0.5}]}},
                            "up_to_params: must be positive"),
    "GPU steps out of order": ({"resources": {"gpus_by_params": [
        {"up_to_params": 100, "gpus": 0.5}, {"up_to_params": 10, "gpus": 0.25}]}},
        "by increasing up_to_params"),
    "empty ladder": ({"ladder": {"rungs": []}}, "ladder.rungs: give at least one"),
    "empty name": ({"name": ""}, "name: must not be empty"),
    "absolute name": ({"name": "/tmp/elsewhere"}, "name: must be a plain folder name"),
    "name climbing out": ({"name": "../.."}, "name: must be a plain folder name"),
    "hidden name": ({"name": ".x"}, "name: must be a plain folder name"),
    "depth beyond the limit": ({"model": {"depth": MAX_LAYERS + 1}, "patterns": {
        "candidates": [], "generate": {"ratios": ["1:1"]}}}, f"must be in 1 .. {MAX_LAYERS}"),
    "generator depth in the thousands": ({"model": {"depth": None}, "patterns": {
        "candidates": [], "generate": {"depths": [5000]}}},
        f"patterns.generate.depths: must be in 1 .. {MAX_LAYERS}"),
    "bootstrap 0": ({"evaluation": {"bootstrap": 0}}, "evaluation.bootstrap: must be positive"),
}


@pytest.mark.parametrize("case", list(ACCEPTED_THEN_FAILED))
def test_what_trials_would_reject_is_rejected_at_load(case: str) -> None:
    patch, expected = ACCEPTED_THEN_FAILED[case]
    message = _rejected(_space_text(patch))
    assert expected in message and "\n" not in message, message
    assert message.split(":")[1].isdigit(), f"no line number: {message}"


def test_duplicate_keys_are_rejected_with_both_lines() -> None:
    message = _rejected("name: a\npatterns: {candidates: [A]}\nname: b\n")
    assert message == "bad.yaml:3: name: key given twice (also on line 1)"
    nested = _rejected("name: a\npatterns: {candidates: [A]}\ndata:\n  seed: 1\n  seed: 2\n")
    assert nested.startswith("bad.yaml:5: data.seed: key given twice")


def test_probe_block_matches_the_probe_layout() -> None:
    """The space sizes a model's vocabulary with PROBE_BLOCK; the probes lay out BLOCK_SIZE."""
    assert PROBE_BLOCK == BLOCK_SIZE


# ---------------------------------------------------------------- the oracles


def _forward_every_candidate(space: SearchSpace) -> None:
    """What a trial does first: build each candidate's model and run it (tiny, CPU)."""
    for config in space.sample(3, seed=0):
        model = HybridLM(hybrid_config(config))
        tokens = torch.randint(0, 50, (1, 8))
        assert model(tokens).shape[-1] == model.config.vocab_size


sizes = st.fixed_dictionaries({
    "d_model": st.sampled_from([8, 12, 16, 24, 30, 32]),
    "n_heads": st.integers(1, 40),
    "n_kv_heads": st.one_of(st.none(), st.integers(1, 8)),
})
attention = st.fixed_dictionaries({
    "kind": st.just("attention"),
    "heads": st.one_of(st.none(), st.integers(1, 8)),
    "kv_heads": st.one_of(st.none(), st.integers(1, 8)),
    "head_dim": st.one_of(st.none(), st.integers(1, 12)),
    "rope": st.booleans(),
})
gdn = st.fixed_dictionaries({
    "kind": st.just("gdn"),
    "heads": st.one_of(st.none(), st.integers(1, 6)),
    "v_heads": st.one_of(st.none(), st.integers(1, 8)),
    "head_dim_k": st.one_of(st.none(), st.integers(1, 8)),
    "expand_v": st.sampled_from([0.5, 1.0, 2.0]),
})


@given(sizes, attention, gdn, st.sampled_from(["AG", "GA", "AA", "GG"]))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_model_sizes_either_fail_at_load_or_build_and_run(model, attn, linear, pattern):
    """Head counts, widths and groups drawn at random: never accepted-then-broken."""
    clean = {k: v for k, v in model.items() if v is not None}
    text = _space_text({"model": {**clean, "mlp_ratio": 2.0},
                        "symbols": {"A": {k: v for k, v in attn.items() if v is not None},
                                    "G": {k: v for k, v in linear.items() if v is not None}},
                        "patterns": {"candidates": [pattern]}})
    try:
        space = SearchSpace.from_text(text, "sizes.yaml")
    except ArchsearchError as err:
        assert str(err).startswith("sizes.yaml:") and "\n" not in str(err), str(err)
        return
    _forward_every_candidate(space)


def _mostly(valid: list, invalid: list) -> st.SearchStrategy:
    """A valid value four times in five: enough draws reach the oracle past the other fields."""
    return st.sampled_from(valid * (4 * max(1, len(invalid)) // len(valid) + 1) + invalid)


data_settings = st.fixed_dictionaries({
    "seq_len": _mostly([16, 32], [1, 8, 15]),
    "vocab_size": _mostly([260, 300], [1, 100, 259]),
    "validation_fraction": _mostly([0.01, 0.5, 0.99], [0.0, 1.0]),
    "builtin_documents": _mostly([2, 12], [0, 1]),
    "probes": st.lists(_mostly(["parity", "copy"], ["sudoku"]), max_size=2),
})
eval_settings = st.fixed_dictionaries({
    "copy_min_run": st.sampled_from([1, 4, 9]),
    "copy_buckets": st.one_of(st.lists(st.integers(-1, 12), max_size=3),
                              st.sampled_from([[], [4], [9, 12], [1, 4, 8]])),
    "categories": st.lists(_mostly(["content", "copy"], ["verbs"]), max_size=2),
    "validation_tokens": _mostly([64, 256], [0]),
})


@given(data_settings, eval_settings)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_data_settings_either_fail_at_load_or_prepare(tmp_path_factory, data, evaluation):
    """Data and evaluation settings drawn at random: what loads also prepares."""
    text = _space_text({"data": data, "evaluation": evaluation})
    try:
        space = SearchSpace.from_text(text, "data.yaml")
    except ArchsearchError as err:
        assert str(err).startswith("data.yaml:") and "\n" not in str(err), str(err)
        return
    trial = space.sample(1, seed=0)[0]
    prepared = prepare_data(trial.data, trial.evaluation, tmp_path_factory.mktemp("cache"))
    inputs, targets = prepared.train_batch(0, 2, seed=0)
    assert inputs.shape == (2, trial.data.seq_len)
    # what a trial then does: one training loss, one evaluation (probes scored as trained)
    model = HybridLM(hybrid_config(trial, prepared.vocab_size))
    assert torch.isfinite(model.loss(torch.as_tensor(inputs), torch.as_tensor(targets)))
    metrics = evaluate(model, prepared, trial.evaluation, device="cpu", probes=True)
    assert "val_loss" in metrics


# ---------------------------------------------------------------- tracebacks and hangs


def _alias_bomb(fan_out: int, levels: int) -> str:
    lines = [f"a0: &a0 [{', '.join(['x'] * fan_out)}]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * fan_out)}]")
    return "name: x\npatterns: {candidates: [A]}\n" + "\n".join(lines) + "\n"


@given(st.integers(2, 12), st.integers(2, 12))
@settings(max_examples=40, deadline=None)
def test_yaml_aliases_never_blow_up(fan_out, levels):
    """An alias bomb (billions of values from a few lines) is refused within seconds."""
    with time_limit(20):
        try:
            SearchSpace.from_text(_alias_bomb(fan_out, levels), "bomb.yaml")
        except ArchsearchError as err:
            assert str(err).startswith("bomb.yaml"), str(err)


@given(st.integers(1, 6000), st.sampled_from(["[", "{a: "]))
@settings(max_examples=30, deadline=None)
def test_deep_nesting_is_refused_with_the_limit(depth, opener):
    closer = "]" if opener == "[" else "}"
    nested = f"{opener * depth}1{closer * depth}"
    text = f"name: x\npatterns: {{candidates: [A]}}\ndescription: {nested}\n"
    with time_limit(20):
        try:
            SearchSpace.from_text(text, "deep.yaml")
        except ArchsearchError as err:
            assert str(err).startswith("deep.yaml") and "\n" not in str(err), str(err)
            return
    assert depth <= MAX_NESTING, "nesting past the limit was accepted"


@given(st.integers(1, 5000), st.integers(1, 100_000), st.sampled_from(["A", "GGGA", "(GA)*2"]))
@settings(max_examples=60, deadline=None)
def test_deep_or_long_patterns_fail_fast_with_the_limit(groups, count, body):
    """Patterns nested or repeated far past the limits: a PatternError within seconds."""
    text = "(" * groups + body + ")" * groups + f"*{count}"
    with time_limit(20):
        try:
            layers = parse(text, "AGS")
        except ArchsearchError as err:
            assert "^" in str(err) and (str(MAX_GROUPS) in str(err) or str(MAX_LAYERS) in str(err))
            return
    assert len(layers) <= MAX_LAYERS and groups <= MAX_GROUPS


# ---------------------------------------------------------------- CLI misuse


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A file, a non-empty folder, sweep folders with broken records, a table without columns."""
    root = tmp_path_factory.mktemp("misuse")
    (root / "afile").write_text("x")
    (root / "full").mkdir()
    (root / "full" / "keep.txt").write_text("precious")
    (root / "space.yaml").write_text(_space_text({}))
    for name, record in (("badjson", "{oops"), ("emptyobj", "{}"), ("list", "[1, 2]")):
        folder = root / "sweeps" / name
        folder.mkdir(parents=True)
        (folder / "space.yaml").write_text(_space_text({}))
        (folder / "sweep.json").write_text(record)
    table = root / "nocols"
    table.mkdir()
    (table / "space.yaml").write_text(_space_text({}))
    (table / "sweep.json").write_text('{"name": "nocols"}')
    pd.DataFrame({"a": [1, 2]}).to_parquet(table / "trials.parquet")
    return {"root": root}


MISUSES = {
    "--storage is a file": (["sweep", "{root}/space.yaml", "--storage", "{root}/afile"],
                            "cannot make the sweep folder"),
    "--name climbs out": (["sweep", "{root}/space.yaml", "--storage", "{root}/s", "--name", ".."],
                          "must be a plain folder name"),
    "--set negative seed": (["sweep", "{root}/space.yaml", "--set", "training.seed=-1"],
                            "training.seed: must be in [0, 2**32)"),
    "--set zero grace": (["sweep", "{root}/space.yaml", "--set", "search.asha={grace_period: 0}"],
                         "grace_period: must be at least 1"),
    "resume invalid JSON": (["resume", "{root}/sweeps/badjson"], "is not a sweep record"),
    "resume empty object": (["resume", "{root}/sweeps/emptyobj"], "is not a sweep record"),
    "resume a list": (["resume", "{root}/sweeps/list"], "is not a sweep record"),
    "recommend without columns": (["recommend", "{root}/nocols"], "no column"),
    "recommend --bootstrap -1": (["recommend", "{root}/nocols", "--bootstrap", "-1"],
                                 "--bootstrap: must be at least 1"),
    "export into a file": (["export", "--pattern", "GGGA", "{root}/afile"], "is a file"),
    "export under a file": (["export", "--pattern", "GGGA", "{root}/afile/sub"],
                            "is a file, not a folder"),
    "export into a full folder": (["export", "--pattern", "GGGA", "{root}/full"],
                                  "already holds 1 file(s) (keep.txt)"),
    "export a deep pattern": (["export", "--pattern", "(" * 3000 + "A" + ")" * 3000,
                               "{root}/e1"], f"nested more than {MAX_GROUPS} deep"),
    "export a long pattern": (["export", "--pattern", "(GGGA)*100000", "{root}/e2"],
                              f"larger than the {MAX_LAYERS} layers"),
    "export --depth 100000": (["export", "--pattern", "GGGA", "--depth", "100000", "{root}/e3"],
                              f"depth must be in 1 .. {MAX_LAYERS}"),
    "tag --out under a file": (["tag", "builtin", "--out", "{root}/afile/sub/x.parquet"],
                               "cannot make its folder"),
    "tag --out a folder": (["tag", "builtin", "--out", "{root}/full"], "is a folder"),
    "validate a missing file": (["validate", "{root}/missing.yaml"], "no such file"),
    "validate a folder": (["validate", "{root}/full"], "cannot read"),
}


@pytest.mark.parametrize("case", list(MISUSES))
def test_cli_misuse_is_one_line(case, places, capsys):
    argv, expected = MISUSES[case]
    argv = [a.replace("{root}", str(places["root"])) for a in argv]
    with time_limit(60):
        code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    first = err.splitlines()[0] if err else ""
    assert expected in err and first.startswith(f"archsearch {argv[0]}: error:"), err
    if "pattern" not in case:  # a pattern error adds the pattern and a caret under the fault
        assert err.count("\n") == 1, err
    assert not (places["root"] / "full" / "config.json").exists()
    assert (places["root"] / "full" / "keep.txt").read_text() == "precious"


def test_export_overwrite_replaces_only_its_own_files(places, capsys):
    folder = places["root"] / "again"
    assert main(["export", "--pattern", "GGGA", str(folder)]) == 0
    assert main(["export", "--pattern", "GGGA", str(folder)]) == 2
    assert "already holds 2 file(s)" in capsys.readouterr().err
    (folder / "notes.txt").write_text("mine")
    assert main(["export", "--pattern", "GGGA", "--overwrite", str(folder)]) == 0
    assert (folder / "notes.txt").read_text() == "mine"


bad_numbers = st.sampled_from(["-1", "0", "-100000", "99999999999"])


@given(st.sampled_from([
    ["recommend", "{root}/nocols", "--bootstrap", "{n}"],
    ["export", "--pattern", "GGGA", "--depth", "{n}", "{root}/fresh{n}"],
    ["sweep", "{root}/space.yaml", "--set", "training.tokens={n}", "--storage", "{root}/afile"],
    ["sweep", "{root}/space.yaml", "--set", "data.seed={n}", "--storage", "{root}/afile"],
    ["sweep", "{root}/space.yaml", "--set", "model.depth={n}", "--storage", "{root}/afile"],
    ["sweep", "{root}/space.yaml", "--set", "evaluation.bootstrap={n}", "--storage",
     "{root}/afile"],
]), bad_numbers)
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_cli_bad_numbers_never_trace_back(places, capsys, argv, number):
    """Numbers out of range in any verb: exit 0 (the value was fine) or 2 with one error line;
    never a traceback (pytest would show it), never a hang. No case here reaches Ray: storage is
    a file."""
    argv = [a.replace("{root}", str(places["root"])).replace("{n}", number) for a in argv]
    with time_limit(60):
        code = main(argv)
    err = capsys.readouterr().err
    assert code in (0, 2), err
    if code == 2:
        assert err.startswith(f"archsearch {argv[0]}: error:") and err.count("\n") == 1, err


# ---------------------------------------------------------------- corpora


def test_an_overlong_line_streams_and_is_cut_without_loss(tmp_path):
    """A text file that is one enormous line: read in pieces, cut into documents of at most
    MAX_DOCUMENT_CHARS, every character kept (multi-byte characters across piece edges too)."""
    from archsearch.data.corpus import MAX_DOCUMENT_CHARS, read_text_file

    text = "é" * (2 * MAX_DOCUMENT_CHARS + 5) + "\n"
    path = tmp_path / "one_line.txt"
    path.write_text(text + "<|endoftext|>\nshort\n")
    docs = list(read_text_file(path))
    assert [len(d.text) for d in docs] == [MAX_DOCUMENT_CHARS, MAX_DOCUMENT_CHARS, 6, 6]
    assert "".join(d.text for d in docs[:3]) == text
    assert [d.origin.rsplit(":", 1)[1] for d in docs] == ["1", "1 part 2", "1 part 3", "3"]


def test_a_jsonl_line_past_the_cap_is_a_one_line_error(tmp_path, monkeypatch):
    from archsearch.data import corpus

    monkeypatch.setattr(corpus, "READ_BYTES", 1024)
    monkeypatch.setattr(corpus, "MAX_JSONL_LINE_BYTES", 4 << 20)
    path = tmp_path / "big.jsonl"
    path.write_text('{"text": "fine"}\n{"text": "' + "x" * (5 << 20) + '"}\n')
    with pytest.raises(ArchsearchError, match=r"big.jsonl:2: line longer than 4 MB"):
        list(corpus.iter_file_documents(path))


def test_bpe_learns_merges_from_a_blob_in_seconds():
    """A long run without whitespace used to take the BPE trainer minutes (a 50 MB one aborted
    the process); the trainer now sees it in runs of MAX_RUN_CHARS."""
    from archsearch.data.builtin import generate_corpus
    from archsearch.data.tokenizer import train_bpe

    texts = [d.text for d in generate_corpus(20, 0)] + ["ab" * 200_000, "q" * 300_000]
    with time_limit(20):
        tokenizer = train_bpe(texts, 300)
    assert tokenizer.get_vocab_size() == 300
