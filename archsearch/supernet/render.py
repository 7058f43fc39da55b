"""What ``archsearch supernet`` prints: the folder, the compute spent, the patterns ranked."""

from __future__ import annotations

from typing import Any

from archsearch.supernet.run import SOURCE, SUPERNET_SOURCE, SupernetOutcome

SHOWN = 10  # ranked patterns printed
# a subnet's score is one estimate from shared weights: no seed noise behind it, and its order
# agreed with trained proxies only at Kendall tau ~0.3-0.4 where measured, better between
# attention ratios than between placements (docs/SUPERNET.md)
ESTIMATES_CAVEAT = ("  (estimates from shared weights, no seed intervals: they ordered patterns "
                    "like trained proxies only at\n  Kendall tau +0.3 to +0.4 on the grids "
                    "measured, worse between placements than between\n  attention ratios, "
                    "docs/SUPERNET.md; a shortlist, not an answer: use --top-k)")


def supernet_summary(outcome: SupernetOutcome) -> str:
    if not outcome.finished:
        return (f"{outcome.folder}\ninterrupted: continue with 'archsearch resume "
                f"{outcome.folder}'")
    s = outcome.summary
    steps = s.get("finetune_steps", 0)
    tuned = (f", fine-tuning {s['finetune_flops']:.3g} FLOPs ({steps} "
             f"step{'s' if steps != 1 else ''} a subnet)" if steps else "")
    lines = [outcome.folder,
             (f"supernet: {s['steps']} steps, {s['tokens']:,} tokens, seed {s['seed']}; "
              f"training {s['train_flops']:.3g} FLOPs, scoring {s['eval_flops']:.3g} FLOPs"
              f"{tuned}, {s['wall_s']:.0f} s; {s['scored']} patterns scored")]
    scored = [r for r in outcome.rows if r.get(SOURCE) == SUPERNET_SOURCE]
    lines.append(_table("as subnets (val / semantic / copy loss)", scored))
    lines.append(ESTIMATES_CAVEAT)
    proxies = [r for r in outcome.rows if r.get(SOURCE) != SUPERNET_SOURCE]
    if proxies:
        lines.append(_table("top-k as proxies", proxies))
        lines.append(f"the proxies ranked with seed intervals: archsearch recommend {outcome.folder}")
    return "\n".join(lines)


def _table(title: str, rows: list[dict[str, Any]]) -> str:
    ranked = sorted(rows, key=lambda r: _num(r.get("val_loss")))
    out = [f"{title}:"]
    for r in ranked[:SHOWN]:
        seed = f" seed {r.get('seed')}" if r.get(SOURCE) != SUPERNET_SOURCE else ""
        out.append(f"  {r['pattern']:<16} {_num(r.get('val_loss')):.4f} "
                   f"{_num(r.get('semantic_loss')):.4f} {_num(r.get('copy_loss')):.4f}{seed}")
    if len(ranked) > SHOWN:
        out.append(f"  ... {len(ranked) - SHOWN} more in trials.parquet")
    return "\n".join(out)


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)
