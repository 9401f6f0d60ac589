"""GTN versus real-data and training-free proxies: rank correlation, speed-up, equal-budget searches."""

from gtn_search.compare.config import CompareConfig, load_compare_config
from gtn_search.compare.run import Comparison, run_compare

__all__ = ["CompareConfig", "Comparison", "load_compare_config", "run_compare"]
