"""The built-in layer symbols, in one place: what each is, and the proxy window of ``S``.

``A`` full attention, ``S`` sliding-window attention, ``G`` Gated DeltaNet. A search space may
override or add symbols (``space.schema.resolve_symbols`` starts from these); a pattern given
outside a space (``export --pattern``, a target's own stack) uses them as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

BUILTIN_KINDS: Mapping[str, str] = MappingProxyType({"A": "attention", "S": "attention",
                                                     "G": "gdn"})
# A proxy's sliding window; at a full-size target, any window means the target's own.
BUILTIN_WINDOWS: Mapping[str, int | None] = MappingProxyType({"A": None, "S": 64, "G": None})
