"""gtn-search: neural architecture search accelerated by Generative Teaching Networks.

Subpackages hold the GTN (generator, curricula, meta-training, teaching sets), the evaluators,
the search runner and its storage, and the CLI. What a candidate is lives in :mod:`search_spaces`;
how the next one is chosen lives in :mod:`strategies`.
"""

from __future__ import annotations

from gtn_search.errors import GTNSearchError

__version__ = "0.1.0"
__all__ = ["GTNSearchError", "__version__"]
