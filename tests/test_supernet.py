"""The one-shot supernet (archsearch/supernet/, docs/SUPERNET.md): subnets are exactly HybridLMs,
sampling is seeded and stays in the space, training resumes exactly, and its folder is read by
analysis, report and recommend like a sweep's."""

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from archsearch import analysis as A
from archsearch.data import evaluate, prepare_data
from archsearch.errors import ArchsearchError, SpaceError
from archsearch.model import HybridLM
from archsearch.model.config import AttentionSpec, GDNSpec, HybridConfig
from archsearch.model.cost import train_flops_per_token
from archsearch.space import SearchSpace
from archsearch.supernet.beam import beam_search
from archsearch.supernet.finetune import FineTune, finetune_batches
from archsearch.supernet.model import Subnet, SupernetLM, layout_for
from archsearch.supernet.render import supernet_summary
from archsearch.supernet.run import SupernetOutcome
from archsearch.supernet.subnets import (
    SubnetCatalog,
    SubnetSampler,
    SupernetError,
    check_space,
    trial_for,
)
from archsearch.supernet.train import read_scores, score_all, train_supernet

# 4 layers, 6 candidates (all A, all G, 1:1 and 3:1 at two placements), sizes matched by the MLP
TINY = """
name: tinysn
model: {depth: 4, d_model: 16, n_heads: 2, mlp_ratio: 2.0,
        match: {reference: "GGGA", resize: mlp, tolerance: 0.05}}
symbols:
  G: {kind: gdn, head_dim_k: 8, expand_v: 2.0}
patterns:
  candidates: ["A*4", "G*4"]
  generate: {ratios: ["1:1", "3:1"], placements: [even_end, front]}
data: {corpus: builtin, builtin_documents: 60, vocab_size: 300, seq_len: 16}
training: {tokens: 384, batch_size: 4, lr: 3.0e-3, precision: fp32, seed: {choices: [0, 1]},
           checkpoint_every: 2}
evaluation: {every: 2, validation_tokens: 256, probe_examples: 4, bootstrap: 10, probe_steps: 2,
             probe_len: 32}
objectives:
  - {metric: semantic_loss, mode: min}
  - {metric: copy_loss, mode: min}
search: {algorithm: grid, samples: 12, concurrency: 1}
resources: {cpus: 1}
supernet: {sandwich: true, distill: 0.5, warmup_fraction: 0.2}
"""
VOCAB = 400


def _space(text: str = TINY, **supernet: object) -> SearchSpace:
    space = SearchSpace.from_text(text, "tiny.yaml")
    if supernet:
        spec = dataclasses.replace(space.spec, supernet=dataclasses.replace(space.spec.supernet,
                                                                            **supernet))
        space = SearchSpace(spec, "tiny.yaml", {})
    return space


@pytest.fixture(scope="module")
def data_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("supernet_data")


# ---------------------------------------------------------------- the model


def _config(pattern: str, width: int, norm: str = "per_kind") -> HybridConfig:
    specs = {"A": AttentionSpec(heads=2, kv_heads=1, head_dim=8),
             "S": AttentionSpec(heads=2, kv_heads=2, head_dim=8, window=5),
             "G": GDNSpec(heads=2, v_heads=2, head_dim_k=8, head_dim_v=16)}
    return HybridConfig(vocab_size=60, d_model=16, mlp_hidden=width, norm_placement=norm,
                        layers=tuple(specs[s] for s in pattern), max_seq_len=32,
                        tie_embeddings=norm == "pre")


@pytest.mark.parametrize("share_mlp", [False, True])
@pytest.mark.parametrize("norm", ["per_kind", "pre"])
def test_a_subnet_is_exactly_the_hybridlm_built_from_its_extracted_weights(share_mlp, norm):
    # four patterns at three MLP widths: the narrower ones use a slice of the shared MLPs
    configs = [_config("AGSA", 40, norm), _config("GGGG", 48, norm), _config("SSAA", 32, norm),
               _config("GAGS", 48, norm)]
    torch.manual_seed(0)
    supernet = SupernetLM(layout_for(configs, share_mlp)).double()
    x = torch.randint(0, 60, (3, 20))
    outputs = []
    for config in configs:
        subnet = Subnet.of(config)
        model = supernet.extract(subnet).double()
        assert isinstance(model, HybridLM) and model.config == config
        expected = model(x)
        got = supernet.logits(x, subnet)
        assert got.dtype == torch.float64
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
        outputs.append(got)
    # the subnets really differ (different blocks, different widths)
    assert (outputs[0] - outputs[3]).abs().max() > 1e-3


def test_compiled_blocks_are_set_on_every_block_and_the_cpu_runs_them_eagerly():
    # supernet.compile on a CPU: the options are set (CUDA would compile), the numbers unchanged
    configs = [_config("AGGA", 40), _config("GGAA", 32)]
    torch.manual_seed(0)
    supernet = SupernetLM(layout_for(configs, share_mlp=True))
    x = torch.randint(0, 60, (2, 12))
    eager = [supernet.logits(x, Subnet.of(c)) for c in configs]
    assert supernet.compile_blocks() is supernet
    blocks = [block for position in supernet.blocks for block in position.values()]
    assert len(blocks) == 8 and all(b.compile_options is not None for b in blocks)
    for config, expected in zip(configs, eager, strict=True):
        torch.testing.assert_close(supernet.logits(x, Subnet.of(config)), expected, rtol=0, atol=0)


def test_shared_mlps_are_one_module_per_position_and_checkpoint_once():
    configs = [_config("AG", 32), _config("GA", 24)]
    torch.manual_seed(0)
    shared = SupernetLM(layout_for(configs, share_mlp=True))
    position = shared.blocks[0]
    assert position["A"].mlp is position["G"].mlp
    separate = SupernetLM(layout_for(configs, share_mlp=False))
    mlp = sum(p.numel() for p in position["A"].mlp.parameters())
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(separate) - count(shared) == 2 * mlp
    state = shared.checkpoint_state()
    assert len(state) < len(shared.state_dict())
    torch.manual_seed(1)
    again = SupernetLM(layout_for(configs, share_mlp=True))
    again.load_checkpoint_state(state)
    x = torch.randint(0, 60, (2, 8))
    for config in configs:
        torch.testing.assert_close(again.logits(x, Subnet.of(config)),
                                   shared.logits(x, Subnet.of(config)), rtol=0, atol=0)
    with pytest.raises(ValueError, match="MLP width"):
        shared.logits(x, Subnet.of(_config("AG", 64)))


# ---------------------------------------------------------------- sampling


def test_sampling_is_seeded_and_stays_within_the_space():
    for sampling in ("candidates", "per_layer", "stratified"):
        space = _space(sampling=sampling, sandwich=False)
        catalog = SubnetCatalog(space, 0, VOCAB)
        candidates = {c.layers for c in space.candidates}
        counts = {tuple(sorted(c.layers)) for c in space.candidates}
        first = SubnetSampler(catalog, space.spec.supernet, seed=3)
        again = SubnetSampler(catalog, space.spec.supernet, seed=3)
        other = SubnetSampler(catalog, space.spec.supernet, seed=4)
        drawn = [first.draw(step)[0].layers for step in range(200)]
        assert drawn == [again.draw(step)[0].layers for step in range(200)]
        assert drawn != [other.draw(step)[0].layers for step in range(200)]
        # a resumed run draws the same subnet for a step whatever came before it
        assert first.draw(57)[0].layers == drawn[57]
        assert {tuple(sorted(d)) for d in drawn} <= counts  # the candidates' ratios only
        if sampling == "candidates":
            assert set(drawn) == candidates
        elif sampling == "stratified":  # every round of 6 steps trains each candidate once
            rounds = [drawn[i:i + len(candidates)] for i in range(0, 198, len(candidates))]
            assert all(sorted(r) == sorted(candidates) for r in rounds)
            assert len({tuple(r) for r in rounds}) > 10  # in a fresh order each round
        else:  # placements beyond the candidates, at the candidates' counts
            assert len(set(drawn) - candidates) > 3
        for step in range(10):
            subnet = first.draw(step)[0]
            assert subnet.config == catalog.subnet(subnet.layers).config
            assert tuple(spec.symbol for spec in subnet.config.layers) == subnet.layers
    sandwich = SubnetSampler(SubnetCatalog(_space(), 0, VOCAB), _space().spec.supernet, 0)
    most, least, _ = sandwich.draw(5)
    assert most.layers == ("A",) * 4 and least.layers == ("G",) * 4


def test_catalog_configs_are_the_sweeps_trial_configs():
    from archsearch.space.build import hybrid_config

    space = _space()
    catalog = SubnetCatalog(space, 1, VOCAB)
    widths = set()
    for candidate, subnet in zip(space.candidates, catalog.candidates, strict=True):
        trial = space.resolve({"pattern": candidate.pattern, "training.seed": 1})
        assert subnet.config == hybrid_config(trial, VOCAB)
        widths.add(subnet.config.mlp_hidden)
    assert len(widths) > 1  # matched sizes: the MLP width differs by pattern


def test_beam_search_finds_the_best_placement():
    target = {1, 6}
    score = lambda layers: sum(abs(i - min(target, key=lambda t: abs(t - i)))
                               for i, s in enumerate(layers) if s == "A") + 0.01 * layers.count("A")
    best = beam_search({"A": 2, "G": 6}, score, width=3)
    assert best[0] == tuple("A" if i in target else "G" for i in range(8))
    assert len(best) == 3 and all(b.count("A") == 2 for b in best)


# ---------------------------------------------------------------- bad input


def test_bad_supernet_settings_are_one_line_errors():
    for bad, message in [("{distill: 1.5}", "supernet.distill: must be in [0, 1], got 1.5"),
                         ("{sampling: perlayer}", "did you mean 'per_layer'"),
                         ("{sandwitch: true}", "unknown key 'sandwitch'; did you mean 'sandwich'"),
                         ("{tokens: 0}", "supernet.tokens: must be positive"),
                         ("{warmup_fraction: 1.0}", "supernet.warmup_fraction: must be in [0, 1)"),
                         ("{compile: maybe}", "supernet.compile: expected true or false, got 'maybe'")]:
        text = TINY.replace("supernet: {sandwich: true, distill: 0.5, warmup_fraction: 0.2}",
                            f"supernet: {bad}")
        with pytest.raises(SpaceError) as err:
            SearchSpace.from_text(text, "tiny.yaml")
        assert message in str(err.value) and "\n" not in str(err.value)
        assert str(err.value).startswith("tiny.yaml:")
    tuned = TINY.replace("lr: 3.0e-3", "lr: {choices: [1.0e-3, 3.0e-3]}")
    space = SearchSpace.from_text(tuned, "tiny.yaml")
    with pytest.raises(SupernetError) as err:
        SubnetCatalog(space, 0, VOCAB)
    assert "training.lr is tuned" in str(err.value) and "--set training.lr=" in str(err.value)
    two_depths = (TINY.replace("depth: 4, ", "").replace('"G*4"]', '"G*2"]')
                  .replace("front]}", "front], depths: [4]}").replace("tolerance: 0.05", "tolerance: 0.5"))
    with pytest.raises(SupernetError) as err:
        check_space(SearchSpace.from_text(two_depths, "tiny.yaml"), 0)
    assert "several depths [2, 4]: a supernet has one depth" in str(err.value)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- training


class _Killed(Exception):
    pass


def _train(space, work: Path, cache: Path, resume_from=None, kill_after=None):
    reports = []

    def report(metrics, checkpoint):
        reports.append((metrics, checkpoint))
        if kill_after is not None and len(reports) == kill_after:
            raise _Killed

    train_supernet(space, 0, report, work, cache, resume_from=resume_from)
    return reports


def test_resuming_from_a_checkpoint_gives_the_uninterrupted_result(tmp_path, data_cache):
    space = _space()
    whole = _train(space, tmp_path / "whole", data_cache)
    assert [m["step"] for m, _ in whole] == [2, 4, 6]
    assert all(c is not None for _, c in whole)
    expected = read_scores(whole[-1][1])
    # killed right after the step-2 report: its checkpoint is where a restart continues
    with pytest.raises(_Killed):
        _train(space, tmp_path / "killed", data_cache, kill_after=1)
    saved = tmp_path / "saved"
    shutil.copytree(tmp_path / "killed" / "checkpoint_0000002", saved)
    resumed = _train(space, tmp_path / "resumed", data_cache, resume_from=saved)
    assert [m["step"] for m, _ in resumed] == [4, 6]
    got = read_scores(resumed[-1][1])
    assert expected is not None and got is not None
    assert [r["layers"] for r in got["rows"]] == [r["layers"] for r in expected["rows"]]
    for a, b in zip(got["rows"], expected["rows"], strict=True):
        assert a["metrics"]["val_loss"] == b["metrics"]["val_loss"]
        assert a["metrics"]["copy_loss"] == b["metrics"]["copy_loss"]
    for key in ("train_flops", "eval_flops", "monitor_flops", "tokens", "steps", "subnet_steps",
                "seed"):
        assert got["summary"][key] == expected["summary"][key], key
    # 6 steps x 64 tokens; warm-up 1 step (all paths), then 3 subnets a step (sandwich)
    assert expected["summary"]["tokens"] == 384 and expected["summary"]["subnet_steps"] == 2 + 5 * 3
    assert len(expected["rows"]) == len(space.candidates)
    metrics = expected["rows"][0]["metrics"]
    for name in ("val_loss", "semantic_loss", "copy_loss", "function_loss", "val_loss_lo",
                 "params", "train_flops_per_token", "match.mlp_hidden"):
        assert np.isfinite(metrics[name]), name


def test_too_many_candidates_are_ranked_by_a_beam_search(tmp_path, data_cache):
    space = _space(max_scored=3, beam_width=2, sandwich=False, distill=0.0,
                   warmup_fraction=0.0)
    reports = _train(space, tmp_path, data_cache)
    scores = read_scores(reports[-1][1])
    assert scores is not None
    layers = [tuple(r["layers"]) for r in scores["rows"]]
    # per layer count: A*4 and G*4 have one placement each, 1:1 and 3:1 keep the beam's best 2
    assert sorted(map("".join, layers)).count("AAAA") == 1
    assert sum(x.count("A") == 2 for x in layers) == 2 and sum(x.count("A") == 1 for x in layers) == 2
    assert scores["summary"]["eval_flops"] > 0


# ---------------------------------------------------------------- the folder, end to end


def test_supernet_folder_is_read_by_analysis_report_and_recommend(tmp_path):
    from archsearch.report.build import write_report
    from archsearch.scaling.recommend import recommend
    from archsearch.supernet.run import resume_supernet, run_supernet
    from archsearch.testing.standin import SyntheticTrainer

    (tmp_path / "tiny.yaml").write_text(TINY)
    outcome = run_supernet(str(tmp_path / "tiny.yaml"), storage=str(tmp_path / "out"), seed=1,
                           top_k=2, proxy_train_fn=SyntheticTrainer())
    folder = tmp_path / "out" / "tinysn-supernet"
    assert outcome.finished and outcome.folder == str(folder)
    summary = json.loads((folder / "supernet.json").read_text())
    assert summary["seed"] == 1 and summary["steps"] == 6 and summary["tokens"] == 384
    assert summary["train_flops"] > 0 and summary["eval_flops"] > 0 and summary["wall_s"] > 0

    trials = pd.read_parquet(folder / "trials.parquet")
    scored = trials[trials.source == "supernet"]
    proxies = trials[trials.source == "sweep"]
    assert len(scored) == 6 and set(scored.status) == {"completed"}
    assert (scored.seed == 1).all() and (scored.fidelity == 1.0).all()
    assert scored[["val_loss", "semantic_loss", "copy_loss", "function_loss"]].notna().all().all()
    # the top 2 on the first objective, each a real (stand-in) proxy at both seeds of the space
    best = scored.sort_values("semantic_loss").pattern.head(2)
    assert set(proxies.pattern) == set(best) and len(proxies) == 4
    assert set(proxies.seed) == {0, 1} and set(proxies.status) == {"completed"}

    sweep = A.load_sweep(folder)
    assert len(sweep.trials) == 10 and sweep.space is not None
    # with proxies present, rankings rest on them alone
    assert set(A.full_budget(sweep.trials).pattern) == set(best)
    rec = recommend(folder)
    assert {e.key for e in rec.ranking} == set(best)
    page = write_report(folder)
    assert Path(page).is_file()

    # a finished folder resumes to the same table without training again
    again = resume_supernet(str(folder), proxy_train_fn=SyntheticTrainer())
    assert len(again.rows) == 10
    assert [p.name for p in (folder / "train" / "runs").iterdir()] == ["001"]
    cli = subprocess.run([sys.executable, "-m", "archsearch.cli", "supernet",
                          str(tmp_path / "tiny.yaml"), "--out", str(folder), "--seed", "0"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert cli.returncode == 2 and cli.stderr.count("\n") == 1
    assert "another space, seed or --top-k" in cli.stderr


def test_supernet_alone_ranks_on_its_subnets(tmp_path):
    from archsearch.supernet.run import run_supernet

    (tmp_path / "tiny.yaml").write_text(TINY)
    outcome = run_supernet(str(tmp_path / "tiny.yaml"), out=str(tmp_path / "sn"),
                           overrides=["supernet.sandwich=false", "supernet.distill=0.0"])
    trials = A.load_sweep(tmp_path / "sn").trials
    assert set(trials.source) == {"supernet"} and len(A.full_budget(trials)) == 6
    assert len(outcome.rows) == 6
    done = subprocess.run([sys.executable, "-m", "archsearch.cli", "recommend",
                           str(tmp_path / "sn")], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "ranking" in done.stdout
    with pytest.raises(ArchsearchError, match="--top-k must be 0 or more"):
        run_supernet(str(tmp_path / "tiny.yaml"), out=str(tmp_path / "sn2"), top_k=-1)


def test_a_diverging_supernet_is_one_line_naming_the_cause(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY)
    done = subprocess.run([sys.executable, "-m", "archsearch.cli", "supernet",
                           str(tmp_path / "tiny.yaml"), "--out", str(tmp_path / "sn"),
                           "--set", "training.lr=1.0e+6"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("archsearch supernet: error: the supernet's training failed: "
                           "TrialDiverged: supernet training loss became nan")
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------- fine-tuning before scoring


def test_finetuning_starts_every_subnet_from_the_shared_weights_and_is_charged(data_cache):
    space = _space(finetune_steps=2, sandwich=False, distill=0.0, warmup_fraction=0.0)
    anchor = trial_for(space, space.candidates[0].pattern, 0)
    data = prepare_data(anchor.data, anchor.evaluation, data_cache)
    catalog = SubnetCatalog(space, 0, data.vocab_size)
    torch.manual_seed(0)
    model = SupernetLM(layout_for(catalog.configs, share_mlp=False))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    training = anchor.training
    batches = finetune_batches(data, training.batch_size, 0, first_step=6, steps=2)
    # the stream's batches of steps 6 and 7, whatever was read before
    stream = data.train_batches(training.batch_size, 0)
    for _ in range(6):
        next(stream)
    assert all(torch.equal(a, b) for a, b in zip(batches[0], next(stream), strict=True))
    finetune = FineTune(batches, training)
    cpu = torch.device("cpu")

    tuned = score_all(model, catalog, space, data, cpu, finetune)
    # the supernet's own weights are exactly as they were
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # each subnet starts from the shared weights: the last one, scored after five others were
    # fine-tuned, equals it fine-tuned alone from a fresh extraction
    last = catalog.candidates[-1]
    extracted = model.extract(last)
    finetune(extracted, cpu)
    reference = evaluate(extracted, data, anchor.evaluation, probes=False)
    assert reference["val_loss"] == tuned["rows"][-1]["metrics"]["val_loss"]
    # fine-tuning trained the subnets: every loss moved, and down
    plain = score_all(model, catalog, space, data, cpu, None)
    for got, untuned in zip(tuned["rows"], plain["rows"], strict=True):
        assert got["metrics"]["val_loss"] < untuned["metrics"]["val_loss"]
    # charged: each subnet's training FLOPs per token x 2 steps x 4 x 16 tokens
    seq_len = data.seq_len
    expected = sum(train_flops_per_token(s.config, seq_len) * 2 * 4 * 16
                   for s in catalog.candidates)
    assert tuned["finetune_flops"] == pytest.approx(expected, rel=1e-12)
    assert plain["finetune_flops"] == 0.0


def _plain_sampling() -> dict[str, object]:
    return {"sandwich": False, "distill": 0.0, "warmup_fraction": 0.0}


def test_finetune_steps_reach_the_summary_and_are_checked(tmp_path, data_cache):
    space = _space(finetune_steps=1, **_plain_sampling())
    reports = _train(space, tmp_path, data_cache)
    scores = read_scores(reports[-1][1])
    assert scores is not None
    summary = scores["summary"]
    assert summary["finetune_steps"] == 1 and summary["finetune_flops"] > 0
    # one step (4 x 16 tokens) of every candidate's training FLOPs per token
    anchor = trial_for(space, space.candidates[0].pattern, 0)
    vocab = prepare_data(anchor.data, anchor.evaluation, data_cache).vocab_size
    per_step = sum(train_flops_per_token(c, 16) * 4 * 16 for c in
                   SubnetCatalog(space, 0, vocab).configs)
    assert summary["finetune_flops"] == pytest.approx(per_step, rel=1e-12)
    printed = supernet_summary(SupernetOutcome("out", [], summary | {"scored": 6, "top_k": 0}))
    assert f"fine-tuning {summary['finetune_flops']:.3g} FLOPs (1 step a subnet)" in printed
    assert "no seed intervals" in printed and "--top-k" in printed  # a shortlist, said so
    text = TINY.replace("supernet: {sandwich: true, distill: 0.5, warmup_fraction: 0.2}",
                        "supernet: {finetune_steps: -1}")
    with pytest.raises(SpaceError) as err:
        SearchSpace.from_text(text, "tiny.yaml")
    assert "supernet.finetune_steps: must not be negative, got -1" in str(err.value) and "\n" not in str(err.value)


def test_fused_training_loss_equals_the_logits_loss() -> None:
    """The fused loss a CUDA supernet trains on is the mean cross entropy over the targets that
    count (float64 reference, some targets ignored), value and gradients."""
    from archsearch.model.hybrid_lm import IGNORE_INDEX
    from archsearch.supernet.model import fused_mean_loss

    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 7, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 50, (3, 7), generator=gen)
    targets[0, :3] = IGNORE_INDEX
    fused = fused_mean_loss(hidden, weight, targets)
    fused_grads = torch.autograd.grad(fused, (hidden, weight))
    logits = torch.nn.functional.linear(hidden, weight).reshape(-1, 50)
    plain = torch.nn.functional.cross_entropy(logits, targets.reshape(-1),
                                              ignore_index=IGNORE_INDEX)
    plain_grads = torch.autograd.grad(plain, (hidden, weight))
    assert abs(fused.item() - plain.item()) < 1e-12
    for a, b in zip(fused_grads, plain_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-12)


def test_subnets_are_scored_under_the_proxies_autocast(data_cache):
    """A sweep trial evaluates under its training precision (bf16 autocast on CUDA); a subnet's
    score is computed the same way, not in fp32 beside it."""
    space = _space(sandwich=False, distill=0.0, warmup_fraction=0.0)
    anchor = trial_for(space, space.candidates[0].pattern, 0)
    data = prepare_data(anchor.data, anchor.evaluation, data_cache)
    catalog = SubnetCatalog(space, 0, data.vocab_size)
    torch.manual_seed(0)
    model = SupernetLM(layout_for(catalog.configs, share_mlp=False))
    cpu = torch.device("cpu")
    scored = score_all(model, catalog, space, data, cpu, None, amp=torch.bfloat16)
    first = catalog.candidates[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        as_a_trial = evaluate(model.extract(first), data, anchor.evaluation, probes=False)
    in_fp32 = evaluate(model.extract(first), data, anchor.evaluation, probes=False)
    got = scored["rows"][0]["metrics"]["val_loss"]
    assert got == as_a_trial["val_loss"]
    assert got != in_fp32["val_loss"]
