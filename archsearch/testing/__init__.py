"""Code for tests and benchmarks only; nothing in a real sweep, scale or export uses it.

It ships inside the package, rather than under ``tests/``, because Ray workers import a trial's
function by module name from the installed package: a trainer passed as
``run_sweep(train_fn=...)`` must be importable on every worker.

``standin.SyntheticTrainer``: a stand-in for ``archsearch.trainer.train_proxy`` that builds no
model, for exercising the sweep machinery (scheduling, resume, faults, tables) in seconds.
"""
