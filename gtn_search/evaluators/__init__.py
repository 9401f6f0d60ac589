"""How a candidate is SCORED: the Evaluator interface and the built-in evaluators.

Built-ins: ``gtn`` (a few SGD steps on a GTN teaching set), ``real`` (steps or epochs on real
data), the training-free proxies ``naswot``, ``synflow`` and ``params`` (peers for the comparison)
and ``synthetic`` (a zero-cost objective for testing strategies and measuring overhead). Add your own with ``@EVALUATORS.register("name")`` or an entry point in the
``gtn_search.evaluators`` group.
"""

from __future__ import annotations

from typing import Any

from gtn_search.evaluators.base import EvalResult, Evaluator, Measurement
from gtn_search.evaluators.gtn_evaluator import GTNEvaluator
from gtn_search.evaluators.real_data import RealDataEvaluator
from gtn_search.evaluators.synthetic import SyntheticEvaluator
from gtn_search.evaluators.zero_cost import (
    NASWOTEvaluator,
    ParamsEvaluator,
    SynflowEvaluator,
)
from gtn_search.registry import EVALUATORS


def make_evaluator(name: str, options: dict[str, Any] | None = None, data_root: str | None = None,
                   device: str | None = None, base_dir: str | None = None) -> Evaluator:
    """Instantiate a registered evaluator with validated options, on ``device`` unless its options name
    one (relative file options are taken from ``base_dir``, the config file's folder; ``None``: the
    current folder)."""
    cls = EVALUATORS.get(name, where="evaluator")
    return cls(options or {}, data_root=data_root, device=device, base_dir=base_dir)


__all__ = ["EvalResult", "Evaluator", "GTNEvaluator", "Measurement", "NASWOTEvaluator", "ParamsEvaluator",
           "RealDataEvaluator", "SynflowEvaluator", "SyntheticEvaluator", "make_evaluator"]
