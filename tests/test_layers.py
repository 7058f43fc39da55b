"""Data flows only downwards (docs/ARCHITECTURE.md): each module imports only layers above it.

The layers, top (imported by everything) to bottom (imports everything). Function-local imports
count too: a lazy import that climbs the pipeline is still a cycle waiting to happen.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (layer, module prefixes); the first matching prefix wins, so specific ones come first.
LAYERS: list[tuple[int, tuple[str, ...]]] = [
    (0, ("archsearch.errors", "archsearch.atomic", "archsearch.hub")),
    (1, ("archsearch.pattern", "archsearch.metrics")),
    # plain data and formulas a space sizes its trials with; no torch
    (2, ("archsearch.model.config", "archsearch.model.cost", "archsearch.model.targets")),
    (3, ("archsearch.space", "archsearch_kernels")),
    # train_step: one optimiser step of a model, used by the trainer and by the probes' tuning
    (4, ("archsearch.model", "archsearch.gpu", "archsearch.autotune", "archsearch.train_step",
         "archsearch.data", "archsearch.summary")),
    (5, ("archsearch.trainer", "archsearch.testing")),  # testing: a stand-in trainer
    (6, ("archsearch.sweep",)),
    (7, ("archsearch.supernet",)),  # one weight-sharing model, run as one sweep trial
    (8, ("archsearch.analysis",)),
    (9, ("archsearch.report",)),
    (10, ("archsearch.scaling",)),
    (11, ("archsearch.export", "archsearch.compare")),
    (12, ("archsearch.cli", "archsearch.__main__")),
    (0, ("archsearch",)),  # the package itself: its version, nothing else
]


def layer(module: str) -> int | None:
    for rank, prefixes in LAYERS:
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT / ("kernels" if "kernels" in path.parts else "")).with_suffix("")
    names = list(parts.parts)
    if names[-1] == "__init__":
        names.pop()
    return ".".join(names)


def imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, node.module)]
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return found


def test_every_import_goes_up_the_pipeline():
    files = sorted((ROOT / "archsearch").rglob("*.py")) + sorted(
        (ROOT / "kernels" / "archsearch_kernels").rglob("*.py"))
    assert len(files) > 50
    wrong = []
    for path in files:
        me = module_name(path)
        mine = layer(me)
        assert mine is not None, f"{me} has no layer in this test: add it (and to the docs)"
        for line, target in imports(path):
            theirs = layer(target)
            if theirs is not None and theirs > mine:
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({me}) imports {target}")
    assert not wrong, "imports against the flow of data:\n" + "\n".join(wrong)


def test_the_checker_sees_an_upward_import():
    assert layer("archsearch.export.targets") > layer("archsearch.scaling.recommend")
    assert layer("archsearch.model.targets") < layer("archsearch.space.space")
    assert layer("archsearch.model.hybrid_lm") > layer("archsearch.space.space")
