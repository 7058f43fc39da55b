"""A validated search space: its candidate patterns, its tunable fields, and how trials sample it.

``SearchSpace.load(path)`` reads and checks the whole file before anything runs.
``suggest(trial)`` is the Optuna define-by-run function: it asks for ``pattern`` first, then each
tunable field by its dotted name (``training.lr``, ``symbols.G.head_dim_k``); fields of a layer
symbol are asked only when the sampled pattern contains that symbol. ``resolve(params)`` turns the
sampled values into a fully fixed ``TrialConfig``; ``grid()`` lists every point of a finite space.

With ``model.match``, ``resolve`` also resizes the trial to the reference's size (``match.py``)
and records how in ``TrialConfig.match``; loading checks that every candidate lands within the
tolerance at every size its tuned fields allow.
"""

from __future__ import annotations

import dataclasses
import glob
import itertools
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archsearch.errors import PatternError, SpaceError, did_you_mean
from archsearch.hub import looks_like_hub_id
from archsearch.metrics import known_metrics
from archsearch.model.config import HybridConfig
from archsearch.model.cost import size_measure
from archsearch.pattern import canonical, generate, parse, parse_ratio, pattern_stats
from archsearch.pattern.generate import PLACEMENTS
from archsearch.space.build import hybrid_config
from archsearch.space.distributions import Choice, Distribution, IntRange, Uniform, first_value
from archsearch.space.loader import (
    Path_,
    dotted,
    nearest_line,
    parse_space_text,
    possible_values,
    read_space_file,
)
from archsearch.space.match import MEASURE_LABELS, MatchError, closest, format_size
from archsearch.space.rules import MIN_BPE_VOCAB, PROBE_BLOCK
from archsearch.space.schema import (
    SpaceFile,
    SymbolSpec,
    resolve_symbols,
)
from archsearch.space.trial import MatchResult, TrialConfig

_DISTRIBUTIONS = (Choice, IntRange, Uniform)


@dataclass(frozen=True)
class Candidate:
    """One distinct layer stack and the generator settings that produced it."""

    pattern: str  # canonical spelling
    layers: tuple[str, ...]
    origins: tuple[str, ...]  # "list" and/or "3:1 even_end" ...


@dataclass(frozen=True)
class Tunable:
    name: str  # dotted path, also the Optuna parameter name
    distribution: Distribution
    symbol: str | None  # asked only when the pattern contains this symbol


class SearchSpace:
    def __init__(self, spec: SpaceFile, file: str, lines: dict[Path_, int]) -> None:
        self.spec, self.file, self._lines = spec, file, lines
        self.symbols = resolve_symbols(spec.symbols)
        self._check_symbols()
        self._check_data()
        self.candidates = self._candidates()
        self.tunables = list(self._tunables())
        self._check_metrics()
        self._check_search()
        self._check_resources()
        self._reference = self._match_reference()
        self._check_match()
        self._check_models()

    # ------------------------------------------------------------ construction

    @classmethod
    def load(cls, path: str | Path) -> SearchSpace:
        spec, lines = read_space_file(path)
        return cls(spec, str(path), lines)

    @classmethod
    def from_text(cls, text: str, file: str = "<string>") -> SearchSpace:
        spec, lines = parse_space_text(text, file)
        return cls(spec, file, lines)

    def field_error(self, field: str, message: str) -> SpaceError:
        """A one-line error naming this file, the line ``field`` ("model.vocab_size") is on, and
        the field: for checks that need more than the space package (data/checks.py)."""
        return self._fail(tuple(field.split(".")), message)

    def _fail(self, path: Path_, message: str) -> SpaceError:
        return SpaceError(self.file, nearest_line(self._lines, path), dotted(path), message)

    def _where(self, path: Path_) -> str:
        line = self._lines.get(path)
        return f"{self.file}:{line}: {dotted(path)}" if line else f"{self.file}: {dotted(path)}"

    def _check_symbols(self) -> None:
        for symbol in self.spec.symbols:
            if len(symbol) != 1 or not symbol.isalpha():
                raise self._fail(("symbols", symbol), "a layer symbol is one letter")

    def _candidates(self) -> list[Candidate]:
        found: dict[tuple[str, ...], list[str]] = {}
        for i, text in enumerate(self.spec.patterns.candidates):
            layers = self._parse(text, ("patterns", "candidates", i))
            found.setdefault(layers, []).append("list")
        generator = self.spec.patterns.generate
        if generator is not None:
            for layers, origin in self._generated(generator):
                found.setdefault(layers, []).append(origin)
        if not found:
            raise self._fail(("patterns",), "no candidate patterns: give 'candidates' or 'generate'")
        return [Candidate(canonical(layers), layers, tuple(dict.fromkeys(origins)))
                for layers, origins in found.items()]

    def _parse(self, text: str, path: Path_) -> tuple[str, ...]:
        try:
            layers = parse(text, self.symbols)
        except PatternError as err:
            raise err.with_context(self._where(path)) from None
        depth = self.spec.model.depth
        if isinstance(depth, int) and len(layers) != depth:
            raise PatternError(
                f"pattern has {len(layers)} layers but model.depth is {depth}", text, len(text)
            ).with_context(self._where(path))
        return tuple(layers)

    def _generated(self, generator: Any) -> Iterator[tuple[tuple[str, ...], str]]:
        base = ("patterns", "generate")
        for field_name in ("linear", "attention"):
            symbol = getattr(generator, field_name)
            if symbol not in self.symbols:
                raise self._fail((*base, field_name), f"unknown layer symbol '{symbol}'")
        depths = generator.depths
        if depths is None:
            if not isinstance(self.spec.model.depth, int):
                raise self._fail(base, "give 'depths' here or a fixed model.depth")
            depths = [self.spec.model.depth]
        ratios = []
        for i, text in enumerate(generator.ratios):
            try:
                ratios.append(parse_ratio(text))
            except ValueError as err:
                raise self._fail((*base, "ratios", i), str(err)) from None
        for i, placement in enumerate(generator.placements):
            if isinstance(placement, str) and placement not in PLACEMENTS:
                hint = did_you_mean(placement, PLACEMENTS)
                raise self._fail((*base, "placements", i), f"unknown placement '{placement}'{hint}")
        for d, depth in enumerate(depths):
            model_depth = self.spec.model.depth
            if isinstance(model_depth, int) and depth != model_depth:
                raise self._fail((*base, "depths", d), f"depth {depth} differs from model.depth "
                                                       f"{model_depth}")
            for ratio, (p, placement) in itertools.product(ratios, enumerate(generator.placements)):
                try:
                    layers = generate(depth, ratio, placement, generator.linear, generator.attention)
                except ValueError as err:
                    raise self._fail((*base, "placements", p), f"{err} (ratio {ratio}, depth "
                                                               f"{depth})") from None
                yield tuple(layers), f"{ratio} {placement}"

    def _tunables(self) -> Iterator[Tunable]:
        for symbol, spec in self.spec.symbols.items():
            for name, value in _fields(spec):
                if isinstance(value, _DISTRIBUTIONS):
                    yield Tunable(f"symbols.{symbol}.{name}", value, symbol)
        for section in ("model", "data", "training", "evaluation"):
            for name, value in _fields(getattr(self.spec, section)):
                if isinstance(value, _DISTRIBUTIONS):
                    yield Tunable(f"{section}.{name}", value, None)

    def _check_metrics(self) -> None:
        evaluation, data = self.spec.evaluation, self.spec.data
        options = set()
        for categories, buckets, probes in itertools.product(
            _values(evaluation.categories), _values(evaluation.copy_buckets), _values(data.probes)
        ):
            options |= set(known_metrics(categories, buckets, probes))
        checks = [(("objectives", i, "metric"), o.metric) for i, o in enumerate(self.spec.objectives)]
        if self.spec.search.asha is not None:
            checks.append((("search", "asha", "metric"), self.spec.search.asha.metric))
        for path, metric in checks:
            if metric not in options:
                hint = did_you_mean(metric, sorted(options))
                raise self._fail(path, f"unknown metric '{metric}'{hint}")
        if not self.spec.objectives:
            raise self._fail(("objectives",), "give at least one objective")
        names = [o.metric for o in self.spec.objectives]
        if len(set(names)) != len(names):
            raise self._fail(("objectives",), f"an objective is listed twice: {names}")

    def _check_data(self) -> None:
        """Rules across data and evaluation fields (each field's own rule ran at load)."""
        data, evaluation = self.spec.data, self.spec.evaluation
        tokenizers = possible_values(data.tokenizer)
        if "bpe" in tokenizers:
            for size in possible_values(data.vocab_size):
                if size < MIN_BPE_VOCAB:
                    raise self._fail(("data", "vocab_size"), f"a byte-level BPE needs at least "
                                                             f"{MIN_BPE_VOCAB}, got {size}")
        for tokenizer in tokenizers:
            if tokenizer == "bpe" or _is_uri(tokenizer) or Path(
                    os.path.expanduser(tokenizer)).exists():
                continue
            if not looks_like_hub_id(tokenizer):  # a hub id is checked when it is fetched
                raise self._fail(("data", "tokenizer"), f"no such tokenizer file or folder "
                                                        f"{tokenizer!r} ('bpe' trains one; a "
                                                        f"hub id is OWNER/NAME)")
        for corpus in possible_values(data.corpus):
            problem = _corpus_problem(corpus)
            if problem:
                raise self._fail(("data", "corpus"), problem)
        buckets = evaluation.copy_buckets
        longest_run = max(possible_values(evaluation.copy_min_run))
        if buckets and buckets[0] < longest_run:
            raise self._fail(("evaluation", "copy_buckets"), f"the first edge {buckets[0]} is "
                             f"below copy_min_run {longest_run}: that bucket would stay empty")
        model_vocab = self.spec.model.vocab_size
        if model_vocab is not None and "bpe" in tokenizers:
            need = max(possible_values(data.vocab_size)) + (PROBE_BLOCK if data.probes else 0)
            for size in possible_values(model_vocab):
                if size < need:
                    extra = f" + {PROBE_BLOCK} probe ids" if data.probes else ""
                    raise self._fail(("model", "vocab_size"), f"must be at least {need} (the "
                                     f"BPE's data.vocab_size{extra}), got {size}")

    def _check_models(self) -> None:
        """Every candidate builds a model at every size its tuned fields allow (head counts
        that divide, even head widths with RoPE, ...): a trial never finds out first."""
        for candidate in self.candidates:
            for params in self._size_points(candidate.pattern):
                try:
                    hybrid_config(self.resolve(params))
                except SpaceError as err:
                    at = {k: v for k, v in params.items() if k != "pattern"}
                    where = f" (with {', '.join(f'{k}={v}' for k, v in at.items())})" if at else ""
                    path = _split(err.field)
                    if path[0] == "symbols" and path[1] not in self.spec.symbols:
                        # a built-in symbol: its sizes come from the model section
                        path, where = ("model",), f" (built-in symbol {path[1]}){where}"
                    raise self._fail(path, f"{err.message}{where}") from None

    def _check_search(self) -> None:
        search = self.spec.search
        if search.algorithm == "grid":
            for tunable in self.tunables:
                if isinstance(tunable.distribution, Uniform):
                    raise self._fail(_split(tunable.name), "grid search needs finite values: "
                                                           "use 'choices' or 'int'")

    def _check_resources(self) -> None:
        resources = self.spec.resources
        if resources.mps and resources.gpus == 0 and not resources.gpus_by_params:
            raise self._fail(("resources", "mps"), "MPS shares GPUs between trials, and these "
                                                  "trials use none (resources.gpus is 0)")

    # ------------------------------------------------------------ matched size

    def _match_reference(self) -> tuple[str, ...] | float | None:
        """The reference of ``model.match``: its layers, or a size given as a number."""
        rule = self.spec.model.match
        if rule is None:
            return None
        path = ("model", "match", "reference")
        value: Any = rule.reference
        if isinstance(value, str):
            number = _as_number(value)  # YAML 1.1 reads 5.0e7 as a string
            if number is None:
                try:
                    return tuple(parse(value, self.symbols))
                except PatternError as err:
                    raise err.with_context(self._where(path)) from None
            value = number
        if not (math.isfinite(value) and value > 0):
            raise self._fail(path, f"a size must be a positive number, got {rule.reference!r}")
        return float(value)

    def _check_match(self) -> None:
        """Every candidate lands within the tolerance, at every size its tuned fields allow."""
        rule = self.spec.model.match
        if rule is None:
            return
        base = ("model", "match")
        if self.spec.ladder is not None:
            raise self._fail(base, "cannot be used with a ladder section (archsearch scale sets "
                                   "each rung's sizes itself); remove one of them")
        resized = _RESIZED_BY[rule.resize]
        for tunable in self.tunables:
            if tunable.name in resized or (tunable.symbol and rule.resize == "gdn_head"
                                           and tunable.name.endswith(".head_dim_k")):
                raise self._fail((*base, "resize"), f"{rule.resize} resizes {tunable.name}, which "
                                 "is tuned; fix its value or resize another field")
        for candidate in self.candidates:
            sized = [t.name for t in self._size_tunables(candidate.pattern)]
            for params in self._size_points(candidate.pattern):
                try:
                    trial = self.resolve(params)
                except MatchError as err:
                    raise self._fail((*base, "multiple_of"), str(err)) from None
                except SpaceError as err:  # the sizes do not fit together at all
                    raise self._fail(("model",), err.message) from None
                result = trial.match
                assert result is not None
                if abs(result.deviation) > rule.tolerance:
                    at = {name: params[name] for name in sized}
                    raise self._fail(base, _unmatched(trial.pattern, at, result, rule.tolerance))

    def _size_tunables(self, pattern: str) -> list[Tunable]:
        """The tuned fields that may change the size of ``pattern``'s model."""
        measure = self.spec.model.match.measure if self.spec.model.match else ""
        return [t for t in self.relevant(pattern)
                if t.name.split(".")[0] in ("model", "symbols") or t.name == "data.vocab_size"
                or (t.name == "data.seq_len" and measure == "train_flops_per_token")]

    def _size_points(self, pattern: str) -> list[dict[str, Any]]:
        """Sampled values to check a candidate's match at: every combination of the values of
        the tuned fields that change its size (choices, the ends of ranges; one field at a time
        when the combinations pass 256), the other fields at their first value."""
        base = {"pattern": pattern} | {t.name: first_value(t.distribution)
                                       for t in self.relevant(pattern)}
        sized = self._size_tunables(pattern)
        options = [_checked_values(t.distribution) for t in sized]
        if math.prod(len(o) for o in options) <= 256:
            return [base | {t.name: v for t, v in zip(sized, values, strict=True)}
                    for values in itertools.product(*options)]
        return [base] + [base | {t.name: v} for t, values in zip(sized, options, strict=True)
                         for v in values]

    def _matched(self, trial: TrialConfig) -> TrialConfig:
        """``trial`` resized by ``model.match`` (unchanged when the space has none)."""
        rule = self.spec.model.match
        if rule is None:
            return trial
        if isinstance(self._reference, tuple):
            layers = self._reference
            symbols = {s: trial.symbols.get(s) or self._first_symbol(s)
                       for s in dict.fromkeys(layers)}
            reference = dataclasses.replace(trial, pattern=canonical(layers), layers=layers,
                                            symbols=symbols)
            model: HybridConfig | None = hybrid_config(reference)
            target = size_measure(model, rule.measure, trial.data.seq_len)
            label = canonical(layers)
        else:
            assert self._reference is not None
            model, target = None, self._reference
            label = format_size(target, rule.measure)
        matched, result = closest(trial, rule, target, label, model)
        return dataclasses.replace(matched, match=result)

    def _first_symbol(self, symbol: str) -> SymbolSpec:
        """A declared symbol with each tuned field at its first value (a reference layer the
        trial did not sample)."""
        spec = self.symbols[symbol]
        changes = {name: first_value(value) for name, value in _fields(spec)
                   if isinstance(value, _DISTRIBUTIONS)}
        return dataclasses.replace(spec, **changes) if changes else spec

    # ------------------------------------------------------------ sampling

    @property
    def pattern_choices(self) -> list[str]:
        return [c.pattern for c in self.candidates]

    def candidate(self, pattern: str) -> Candidate:
        for c in self.candidates:
            if c.pattern == pattern:
                return c
        raise KeyError(pattern)

    def relevant(self, pattern: str) -> list[Tunable]:
        layers = set(self.candidate(pattern).layers)
        return [t for t in self.tunables if t.symbol is None or t.symbol in layers]

    def missing(self, params: Mapping[str, Any]) -> list[str]:
        """The parameters a trial of this space needs that ``params`` lacks (``["pattern"]``
        when it has none of this space's patterns). An Optuna trial whose driver stopped inside
        ``suggest`` lacks some: define-by-run records each parameter as it is drawn."""
        if params.get("pattern") not in self.pattern_choices:
            return ["pattern"]
        return [t.name for t in self.relevant(params["pattern"]) if t.name not in params]

    def suggest(self, trial: Any) -> None:
        """Optuna define-by-run: ask for the pattern, then each field relevant to it."""
        pattern = trial.suggest_categorical("pattern", self.pattern_choices)
        for tunable in self.relevant(pattern):
            tunable.distribution.suggest(trial, tunable.name)

    def grid(self) -> list[dict[str, Any]]:
        """Every point of a finite space, each exactly once, in a fixed order."""
        points = []
        for pattern in self.pattern_choices:
            relevant = self.relevant(pattern)
            for values in itertools.product(*(t.distribution.grid() for t in relevant)):
                points.append({"pattern": pattern, **{t.name: v for t, v in zip(relevant, values, strict=True)}})
        return points

    def resolve(self, params: Mapping[str, Any]) -> TrialConfig:
        """The fixed configuration for sampled ``params``; raises KeyError if one is missing."""
        pattern = params["pattern"]
        candidate = self.candidate(pattern)
        used = dict.fromkeys(candidate.layers)

        def fix(obj: Any, prefix: str) -> Any:
            changes = {name: params[f"{prefix}.{name}"] for name, value in _fields(obj)
                       if isinstance(value, _DISTRIBUTIONS)}
            return dataclasses.replace(obj, **changes) if changes else obj

        symbols = {s: fix(self.symbols[s], f"symbols.{s}") for s in used}
        relevant = {"pattern": pattern} | {t.name: params[t.name] for t in self.relevant(pattern)}
        trial = TrialConfig(
            space_name=self.spec.name,
            pattern=pattern,
            layers=candidate.layers,
            symbols=symbols,
            model=fix(self.spec.model, "model"),
            data=fix(self.spec.data, "data"),
            training=fix(self.spec.training, "training"),
            evaluation=fix(self.spec.evaluation, "evaluation"),
            params=relevant,
            watched=self.watched_metrics,
        )
        return self._matched(trial)

    @property
    def watched_metrics(self) -> tuple[str, ...]:
        names = [o.metric for o in self.spec.objectives]
        if self.spec.search.asha is not None:
            names.append(self.spec.search.asha.metric)
        return tuple(dict.fromkeys(names))

    def sample(self, n: int, seed: int) -> list[TrialConfig]:
        """``n`` trial configs drawn with Optuna's random sampler (grid: the first ``n`` points)."""
        import optuna

        if self.spec.search.algorithm == "grid":
            return [self.resolve(p) for p in self.grid()[:n]]
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        configs = []
        for _ in range(n):
            trial = study.ask()
            self.suggest(trial)
            configs.append(self.resolve(trial.params))
            study.tell(trial, 0.0)
        return configs

    def pattern_kinds(self) -> dict[str, str]:
        """The layer kind (``attention``, ``gdn``) of every declared symbol."""
        return {s: spec.kind for s, spec in self.symbols.items()}

    def stats(self, candidate: Candidate) -> Any:
        return pattern_stats(candidate.layers, self.pattern_kinds())


# the fields each model.match.resize mode changes (tuning them as well would be contradictory)
_RESIZED_BY = {"d_model": ("model.d_model",), "mlp": ("model.mlp_hidden", "model.mlp_ratio"),
               "gdn_head": ()}  # gdn_head: every GDN symbol's head_dim_k, checked by suffix


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _checked_values(distribution: Distribution) -> list[Any]:
    """The values of a tuned size field that validation checks the match at."""
    if isinstance(distribution, Choice):
        return list(distribution.values)
    if isinstance(distribution, IntRange) and len(distribution.grid()) <= 16:
        return distribution.grid()
    return [distribution.low, distribution.high]


def _unmatched(pattern: str, at: Mapping[str, Any], result: MatchResult,
               tolerance: float) -> str:
    """Why a candidate misses the target (at these tuned sizes): its best, and the tolerance."""
    size = format_size(result.size, result.measure)
    target = format_size(result.target, result.measure)
    what = MEASURE_LABELS[result.measure]
    who = pattern + (f" (with {', '.join(f'{k}={v}' for k, v in at.items())})" if at else "")
    if result.value is None:
        best = f"{who} has nothing to resize: it has {size} {what}"
    else:
        best = f"{who} lands at best at {size} {what} ({result.field} {result.value})"
    return (f"{best}, {result.deviation:+.2%} from the target {target} of "
            f"{result.reference}; tolerance {tolerance:.2%}")


def _is_uri(text: str) -> bool:
    return "://" in text


def _corpus_problem(corpus: str) -> str | None:
    """Why a corpus spec names no file here (None when it does); remote URIs and ``hf:``
    datasets are not checked (they are read where the trial runs)."""
    if corpus == "builtin" or _is_uri(corpus) or corpus.startswith("hf:"):
        return None
    path = os.path.expanduser(corpus)
    if any(ch in corpus for ch in "*?["):
        matches = glob.glob(path, recursive=True)
        return None if any(os.path.isfile(m) for m in matches) else (
            f"no file matches {corpus!r}")
    return None if os.path.exists(path) else f"no such file or folder {corpus!r} (or 'builtin')"


def _fields(obj: Any) -> list[tuple[str, Any]]:
    return [(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)]


def _values(value: Any) -> list[Any]:
    """The possible values of a field that may be a distribution."""
    return value.grid() if isinstance(value, Choice) else [value]


def _split(name: str) -> Path_:
    return tuple(name.split("."))
