"""``archsearch compare``: two tiny transformers checkpoints written by ``archsearch export``
(OlmoHybrid and Olmo3 configs) with a BPE of the built-in corpus, compared token by token."""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from archsearch.cli import main
from archsearch.compare import CompareSettings, run_compare
from archsearch.compare.run import compare_loaded
from archsearch.compare.sources import LoadedModel, find_model, load_model
from archsearch.data.builtin import generate_corpus
from archsearch.data.categories import CATEGORIES
from archsearch.data.tokenizer import train_bpe
from archsearch.errors import ArchsearchError
from archsearch.model.checkpoint import save_checkpoint
from archsearch.model.config import AttentionSpec, GDNSpec, HybridConfig
from archsearch.model.hybrid_lm import HybridLM

VOCAB = 300
WINDOW = 64
TOKENS = 1500


def _export(root: Path, name: str, pattern: str, seed: int, tokenizer: Path,
            vocab: int = VOCAB) -> Path:
    config = HybridConfig.from_pattern(
        pattern, vocab_size=vocab, d_model=32, mlp_hidden=64, max_seq_len=256,
        attention=AttentionSpec(heads=2, kv_heads=2, head_dim=16),
        gdn=GDNSpec(heads=2, v_heads=2, head_dim_k=8, head_dim_v=16))
    torch.manual_seed(seed)
    save_checkpoint(HybridLM(config), root / f"{name}-proxy")
    out = root / name
    assert main(["export", "--checkpoint", str(root / f"{name}-proxy"), "--format", "hf",
                 str(out)]) == 0
    shutil.copy(tokenizer, out / "tokenizer.json")
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``hybrid`` (GA, OlmoHybrid) and ``olmo3`` (AA) with one BPE; ``other`` (AA) with a BPE
    of another size."""
    root = tmp_path_factory.mktemp("compare")
    texts = [d.text for d in generate_corpus(60, 0)]
    for size in (VOCAB, VOCAB - 20):
        train_bpe(texts, size).save(str(root / f"bpe{size}.json"))  # type: ignore[attr-defined]
    return {"hybrid": _export(root, "hybrid", "GA", 0, root / f"bpe{VOCAB}.json"),
            "olmo3": _export(root, "olmo3", "AA", 1, root / f"bpe{VOCAB}.json"),
            "other": _export(root, "other", "AA", 2, root / f"bpe{VOCAB - 20}.json")}


def _settings(out: Path, **kw: object) -> CompareSettings:
    return CompareSettings(**{"out": out, "max_tokens": TOKENS, "window": WINDOW,
                              "bootstrap": 50, "progress": False, **kw})  # type: ignore[arg-type]


def test_model_against_itself_gives_exactly_zero_gaps(models, tmp_path) -> None:
    result = run_compare(str(models["hybrid"]), str(models["hybrid"]), _settings(tmp_path))
    gaps = result.comparison.gaps
    scored = gaps[gaps["n"] > 0]
    assert len(scored) >= 8  # all, the classes present, copy and its buckets
    for column in ("gap", "lo", "hi"):
        assert (scored[column] == 0.0).all(), scored
    assert (result.tokens["gap"] == 0.0).all()
    assert (result.comparison.regression["coef"] == 0.0).all()


def test_exported_hybrid_and_olmo3_compare_end_to_end(models, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    code = main(["compare", str(models["olmo3"]), str(models["hybrid"]), "--corpus", "builtin",
                 "--max-tokens", str(TOKENS), "--window", str(WINDOW), "--bootstrap", "50",
                 "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "content" in printed.out and "copy_16_plus" in printed.out
    assert "tokens/s" in printed.err  # the progress line
    for name in ("tokens.parquet", "gaps.csv", "regression.csv", "copy_gain.csv",
                 "summary.json", "index.html"):
        assert (out / name).is_file(), name
    tokens = pd.read_parquet(out / "tokens.parquet")
    assert len(tokens) == TOKENS
    assert set(tokens["category"]) <= set(CATEGORIES) and tokens["copy"].any()
    assert np.array_equal(tokens["gap"], tokens["reference_loss"] - tokens["candidate_loss"])
    gaps = pd.read_csv(out / "gaps.csv").set_index("group")
    content = tokens[tokens["category"] == "content"]
    assert math.isclose(gaps.loc["content", "gap"], content["gap"].mean(), rel_tol=1e-9)
    assert gaps.loc["content", "lo"] <= gaps.loc["content", "gap"] <= gaps.loc["content", "hi"]
    html = (out / "index.html").read_text()
    assert html.count('<figure class="plot"') == 3 and html.count("<svg") == 3

    # float64 reference: the first document's first window, scored by hand with each model
    from transformers import AutoModelForCausalLM

    first = tokens[tokens["doc"] == 0].sort_values("position").head(WINDOW - 1)
    eod = 0  # the BPE's <|endoftext|>: the context before every document
    ids = torch.tensor([[eod, *first["token"].tolist()]])
    for side, folder in (("reference", models["olmo3"]), ("candidate", models["hybrid"])):
        model = AutoModelForCausalLM.from_pretrained(folder).double().eval()
        with torch.no_grad():
            logp = torch.log_softmax(model(ids[:, :-1]).logits[0].double(), -1)
        expected = -logp[torch.arange(len(first)), ids[0, 1:]].numpy()
        np.testing.assert_allclose(first[f"{side}_loss"].to_numpy(), expected, atol=2e-5)


class _BetterOn(torch.nn.Module):
    """A model that is ``base`` except that it adds ``boost`` to the logit of the true next
    token whenever that token's id is in ``ids``. It reads the next token from its own input
    (position t + 1), so the last position of a window gets no boost; every other target keeps
    exactly ``base``'s logits, so its loss is unchanged."""

    def __init__(self, base: torch.nn.Module, ids: set[int], boost: float,
                 vocab: int = VOCAB) -> None:
        super().__init__()
        self.base, self.boost = base, boost
        self.register_buffer("chosen", torch.zeros(vocab, dtype=torch.bool))
        self.chosen[sorted(ids)] = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.base(x).logits.clone()
        nxt = x[:, 1:]
        hit = self.chosen[nxt]
        b, t = hit.nonzero(as_tuple=True)
        logits[b, t, nxt[b, t]] += self.boost
        return logits


def test_advantage_on_one_category_shows_only_there(models, tmp_path) -> None:
    settings = _settings(tmp_path / "probe")
    ref = load_model(find_model(str(models["olmo3"]), "REF"), "REF", "cpu")
    # the token ids that are content words wherever they occur in the scored tokens
    labelled = run_compare(str(models["olmo3"]), str(models["olmo3"]), settings).tokens
    by_id = labelled.groupby("token")["category"].agg(set)
    content_ids = {int(i) for i, cats in by_id.items() if cats == {"content"}}
    assert len(content_ids) > 20
    boost = 1.0
    cand = LoadedModel("better-on-content", "test", _BetterOn(ref.module, content_ids, boost),
                       ref.tokenizer, ref.context, ref.vocab_size, "float32")
    result = compare_loaded(ref, cand, _settings(tmp_path / "out"))
    gaps = result.comparison.gaps.set_index("group")
    assert gaps.loc["content", "lo"] > 0.3  # most content targets are boosted
    for other in ("function", "number", "punctuation", "delim_open", "delim_close", "other"):
        if gaps.loc[other, "n"]:
            assert gaps.loc[other, "gap"] == 0.0, other
    # each boosted token gains exactly log p'(y) - log p(y) = boost - log(1 + p (e^boost - 1))
    tokens = result.tokens
    p = np.exp(-tokens["reference_loss"].to_numpy(np.float64))
    expected = boost - np.log1p(p * math.expm1(boost))
    boosted = tokens["gap"].to_numpy() != 0
    assert tokens.loc[boosted, "token"].isin(content_ids).all()
    np.testing.assert_allclose(tokens["gap"].to_numpy()[boosted], expected[boosted], atol=1e-5)
    assert boosted.sum() > 0.9 * tokens["token"].isin(content_ids).sum()  # all but window ends
    regression = result.comparison.regression.set_index("term")
    assert regression.loc["content", "t_cluster"] > 5  # over function words, with the controls


def test_mismatched_tokenizers_fail_with_one_line(models, tmp_path, capsys) -> None:
    code = main(["compare", str(models["olmo3"]), str(models["other"]), "--max-tokens", "100",
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert "tokenizers differ" in err and "300 vs 280 entries" in err


def test_unreachable_hub_id_fails_fast_with_one_line(models, tmp_path, capsys,
                                                     monkeypatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    start = time.perf_counter()
    code = main(["compare", "archsearch-tests/no-such-model", str(models["olmo3"]),
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "REF archsearch-tests/no-such-model" in err
    assert time.perf_counter() - start < 20


def test_model_without_tokenizer_needs_one(models, tmp_path, capsys) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(models["olmo3"], bare)
    (bare / "tokenizer.json").unlink()
    code = main(["compare", str(bare), str(bare), "--out", str(tmp_path / "o")])
    assert code == 2 and "--tokenizer" in capsys.readouterr().err
    code = main(["compare", str(bare), str(models["olmo3"]), "--max-tokens", "200",
                 "--window", "32", "--out", str(tmp_path / "o")])
    assert code == 0


def test_two_trials_of_a_sweep_compare_with_the_sweeps_tokenizer(tiny_sweep, tmp_path) -> None:
    """``SWEEP_DIR:TRIAL_ID``: the trial's newest checkpoint, tokenizer and seq_len."""
    trials = pd.read_parquet(tiny_sweep / "trials.parquet").sort_values("trial_id")
    first, second = trials["trial_id"].iloc[0], trials["trial_id"].iloc[1]
    ref = find_model(f"{tiny_sweep}:{first}", "REF")
    assert ref.kind == "proxy" and ref.context == 32  # the sweep's data.seq_len
    assert ref.tokenizer is not None and ref.tokenizer.vocab_size <= ref.vocab_size
    result = run_compare(f"{tiny_sweep}:{first}", f"{tiny_sweep}:{second}",
                         CompareSettings(out=tmp_path, max_tokens=600, bootstrap=20,
                                         progress=False))
    assert result.window == 32 and len(result.tokens) == 600
    assert np.isfinite(result.tokens["gap"]).all() and (result.tokens["gap"] != 0).any()
    with pytest.raises(ArchsearchError, match="no trial 'nope'"):
        find_model(f"{tiny_sweep}:nope", "CAND")


# Part of speech (--pos). A real spaCy pipeline, built here: a blank English tokenizer and an
# attribute_ruler tagging the built-in corpus's made-up words from its lexicon (no statistical
# model is needed, and none can be downloaded in CI). Saved to a folder, it is loaded the way
# --pos-model loads any pipeline.
_DETERMINERS = ["the", "a", "an", "every", "his", "her", "their", "these", "those", "this",
                "that", "many", "some", "no"]


@pytest.fixture(scope="module")
def pos_pipeline(tmp_path_factory: pytest.TempPathFactory) -> str:
    import spacy

    from archsearch.data.builtin import make_lexicon

    lex = make_lexicon(0)
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("attribute_ruler")
    for tag, words in (("NOUN", lex.nouns + lex.plurals + lex.containers),
                       ("VERB", lex.verbs + lex.verbs_3sg + lex.verbs_past),
                       ("ADJ", lex.adjectives), ("ADV", lex.adverbs), ("PROPN", lex.names),
                       ("DET", tuple(_DETERMINERS))):
        ruler.add(patterns=[[{"LOWER": {"IN": sorted(set(words))}}]], attrs={"POS": tag})
    ruler.add(patterns=[[{"IS_PUNCT": True}]], attrs={"POS": "PUNCT"})
    ruler.add(patterns=[[{"IS_DIGIT": True}]], attrs={"POS": "NUM"})
    folder = tmp_path_factory.mktemp("spacy") / "en_rules"
    nlp.to_disk(folder)
    return str(folder)


def test_pos_tags_follow_each_tokens_word_through_offsets(models, pos_pipeline) -> None:
    """Every token takes the tag spaCy gave the word holding its first non-space character;
    sub-word tokens of one word share it; whitespace-only tokens are SPACE."""
    import spacy

    from archsearch.data.categories import spacy_pos
    from archsearch.data.tokenizer import load_tokenizer

    tok = load_tokenizer(models["olmo3"] / "tokenizer.json")
    text = "Every bafunt geely kots a drerk.  His zalou shomps him, 1290 times!"
    ((ids, offs),) = tok.encode([text])
    tags = spacy_pos(text, offs, pos_pipeline)
    doc = spacy.load(pos_pipeline)(text)
    by_char = {i: (t.pos_ or "X") for t in doc for i in range(t.idx, t.idx + len(t.text))}
    assert len(tags) == len(ids)
    for (start, end), tag in zip(offs, tags, strict=True):
        piece = text[start:end]
        if not piece.strip():
            assert tag == "SPACE"
        else:
            first = start + len(piece) - len(piece.lstrip())
            assert tag == by_char[first], (piece, tag)
    assert {"NOUN", "VERB", "DET", "PUNCT", "NUM"} <= set(tags)
    assert any(e - s < len("bafunt") and tags[i] == "NOUN" for i, (s, e) in enumerate(offs)
               if text[s:e].strip() and "bafunt".startswith(text[s:e].strip()))  # a sub-word


WORD_VOCAB = 3000  # a BPE large enough to hold most of the built-in corpus's words whole


@pytest.fixture(scope="module")
def word_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An exported AA model whose BPE keeps frequent words whole, so token ids are nouns or
    not wherever they occur (the 300-entry BPE splits made-up words into shared pieces)."""
    root = tmp_path_factory.mktemp("words")
    texts = [d.text for d in generate_corpus(200, 0)]
    train_bpe(texts, WORD_VOCAB).save(str(root / "bpe.json"))  # type: ignore[attr-defined]
    return _export(root, "words", "AA", 3, root / "bpe.json", WORD_VOCAB)


def test_advantage_on_nouns_shows_only_on_the_noun_group(word_model, pos_pipeline,
                                                         tmp_path) -> None:
    settings = _settings(tmp_path / "probe", pos=True, pos_model=pos_pipeline)
    ref = load_model(find_model(str(word_model), "REF"), "REF", "cpu")
    labelled = compare_loaded(ref, ref, settings).tokens
    by_id = labelled.groupby("token")["pos"].agg(set)
    noun_ids = {int(i) for i, tags in by_id.items() if tags == {"NOUN"}}  # nouns wherever seen
    assert len(noun_ids) > 20
    assert labelled["token"].isin(noun_ids).sum() > 0.5 * (labelled["pos"] == "NOUN").sum()
    cand = LoadedModel("better-on-nouns", "test",
                       _BetterOn(ref.module, noun_ids, 1.0, ref.vocab_size),
                       ref.tokenizer, ref.context, ref.vocab_size, "float32")
    out = tmp_path / "out"
    result = compare_loaded(ref, cand, _settings(out, pos=True, pos_model=pos_pipeline))
    gaps = result.comparison.gaps.set_index("group")
    pos_groups = [g for g in gaps.index if g.startswith("pos_") and gaps.loc[g, "n"]]
    assert {"pos_NOUN", "pos_VERB", "pos_ADJ", "pos_DET", "pos_PUNCT"} <= set(pos_groups)
    assert gaps.loc["pos_NOUN", "lo"] > 0.2
    for group in pos_groups:
        if group != "pos_NOUN":
            assert gaps.loc[group, "gap"] == 0.0, group
    tokens = result.tokens
    assert math.isclose(gaps.loc["pos_NOUN", "gap"],
                        tokens.loc[tokens["pos"] == "NOUN", "gap"].mean(), rel_tol=1e-12)
    assert int(gaps.loc["pos_NOUN", "n"]) == int((tokens["pos"] == "NOUN").sum())
    regression = result.comparison.regression.set_index("term")
    assert result.comparison.pos_baseline == "DET" and "pos_intercept" in regression.index
    assert regression.loc["pos_NOUN", "t_cluster"] > 5
    assert abs(regression.loc["pos_VERB", "coef"]) < 0.1 * regression.loc["pos_NOUN", "coef"]
    assert "content" in regression.index  # the class fit is still there, first
    # every output carries the groups: the parquet, the tables, the page, the summary
    assert "pos" in pd.read_parquet(out / "tokens.parquet").columns
    assert "pos_NOUN" in set(pd.read_csv(out / "gaps.csv")["group"])
    assert "pos_NOUN" in set(pd.read_csv(out / "regression.csv")["term"])
    assert "Gap per part of speech" in (out / "index.html").read_text()
    assert "pos_NOUN" in result.summary and "regression on part of speech" in result.summary


def test_pos_without_the_spacy_model_is_one_line_saying_how(models, tmp_path, capsys) -> None:
    code = main(["compare", str(models["olmo3"]), str(models["olmo3"]), "--pos",
                 "--pos-model", "no_such_spacy_model_xyz", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "--pos" in err and "python -m spacy download no_such_spacy_model_xyz" in err
    assert not (tmp_path / "tokens.parquet").exists()
