"""The GTN-vs-real benchmark keeps each finished real-data horizon and reuses it only for the same run."""
import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "gtn_vs_real.py"


def _module():
    spec = importlib.util.spec_from_file_location("gtn_vs_real_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_finished_horizons_are_reused_only_with_the_same_key(tmp_path):
    cache_cls = _module().RealHorizonCache
    path = tmp_path / "real_horizons.json"
    key = {"learners": ["conv16-32-fc64"], "val_size": 5000}
    row = {"best": {"optimizer": "sgd", "lr": 0.3, "momentum": 0.5}, "grid": [], "test_mean": 0.94,
           "test_std": 0.01, "curves": [{8: 0.7, 32: 0.94}]}
    cache = cache_cls(path, key)
    assert cache.get(32) is None
    cache.put(32, row)
    again = cache_cls(path, dict(key))
    assert again.get(32) == row          # int step keys come back as ints
    assert again.get(64) is None
    assert cache_cls(path, {**key, "val_size": 1000}).get(32) is None  # another run: recomputed
