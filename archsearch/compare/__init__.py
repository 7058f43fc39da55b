"""``archsearch compare REF CAND``: Ai2's token-level comparison of any two language models.

Modules, in the order a comparison runs: ``sources`` (load a transformers folder, a hub id, an
archsearch checkpoint or a sweep trial, with its tokenizer), ``tokens`` (the corpus tokenized
once, labelled and packed into windows), ``score`` (per-token losses, memory-aware batches,
progress), ``run`` (the shared-tokenizer check, the statistics, the files), ``table`` (the
terminal table) and ``page`` (the one-page HTML). The statistics are ``data.compare``'s.
"""

from archsearch.compare.run import CompareResult, CompareSettings, run_compare

__all__ = ["CompareResult", "CompareSettings", "run_compare"]
