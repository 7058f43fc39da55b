"""The one-shot hybrid supernet (``archsearch supernet``, docs/SUPERNET.md).

One weight-sharing model holds an attention block and a GDN block (every symbol of the space) at
every layer position; each training step trains subnets drawn with a seed; afterwards every
candidate (or the top of a beam search) is scored as a subnet on the trainer's own metrics.

- ``model.py``: ``SupernetLM``, ``Subnet``, a subnet's export as an ordinary ``HybridLM``
- ``subnets.py``: each pattern's config as a sweep would build it; the seeded step sampler
- ``train.py``: the training loop, checkpoints and resume, FLOPs accounting
- ``score.py``: subnets scored with ``archsearch.data.evaluate``; ``beam.py``: placements
- ``trainable.py``: the supernet as the one trial of a sweep (Ray Tune, same cluster path)
- ``run.py``: the folder, its ``trials.parquet`` and ``supernet.json``, ``--top-k`` proxies
"""
