"""Benchmark: every optimizer in Nevergrad's registry through the ``ng:`` strategy, run and resumed.

    nice -n 10 python benchmarks/nevergrad_registry.py --out benchmarks/results/nevergrad_registry.json
    python benchmarks/nevergrad_registry.py --names CMAL2 Carola8 NGOpt      # a few

For each optimizer: build ``ng:<name>`` on gtn-nas (budget ``2 * asks``), run ``asks`` asks/tells
on a synthetic seeded score, save ``state_dict`` through JSON, go on for ``asks`` more (the
uninterrupted run); then scramble numpy's global random state (as a new process would find it),
load the saved state into a fresh strategy and go on for the same ``asks``: the continuation must
equal the uninterrupted run. Each optimizer ends in one category:

* ``ok``: runs and resumes exactly; ``slow``: the same, but the whole check took more than
  ``--slow`` s, or was not done within ``--timeout`` s (BOSplit: its Gaussian process gets slower
  with every ask);
* ``missing-package``: refused when built (``MissingPackageError``), with the package to install;
* ``not-resumable``: refused when built (``NotResumableError``);
* ``refused``: refused when built for another reason (it fails on this space);
* ``failure``: anything else (an exception after the build, a continuation that differs, a
  timeout): each is a bug in the ``ng:`` strategy.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from gtn_search.errors import ConfigError, MissingPackageError, NotResumableError
from gtn_search.seeding import derive_seed
from search_spaces.presets import get_space
from strategies import Strategy, make_strategy
from strategies.nevergrad_adapter import nevergrad_optimizers

#: the space of results/nevergrad_registry.json (measured before cells could repeat an input)
SPACE = get_space("gtn-nas", allow_repeated_inputs=False)
CATEGORIES = ("ok", "slow", "missing-package", "not-resumable", "refused", "failure")


def score(seed: int, number: int, arch_hash: str) -> float | None:
    """The synthetic seeded score of a candidate (every 7th trial fails)."""
    if number % 7 == 6:
        return None
    return derive_seed(seed, "nevergrad-registry", arch_hash) / 2**63


def _steps(s: Strategy, seed: int, count: int) -> list[str]:
    hashes = []
    for _ in range(count):
        c = s.ask()
        s.tell(c.number, score(seed, c.number, c.architecture.hash))
        hashes.append(c.architecture.hash)
    return hashes


class Timeout(BaseException):
    """Raised by the alarm (not an Exception, so that no handler on the way swallows it)."""


def _timeout(signum: int, frame: Any) -> None:
    raise Timeout("no result within the time limit")


def check_optimizer(name: str, asks: int = 20, seed: int = 0, slow: float = 20.0,
                    timeout: float = 300.0) -> dict[str, Any]:
    """Run, save, resume and compare ``ng:<name>``; return its category, message and seconds."""
    start = time.monotonic()
    result: dict[str, Any] = {"category": "ok", "message": ""}

    def build() -> Strategy:
        return make_strategy(f"ng:{name}", SPACE, seed, budget=2 * asks)

    previous = signal.signal(signal.SIGALRM, _timeout)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        try:
            s = build()
        except MissingPackageError as exc:
            package = re.search(r"needs the package '([^']+)'", str(exc))
            return {"category": "missing-package", "message": str(exc),
                    "package": package.group(1) if package else "?", "seconds": time.monotonic() - start}
        except NotResumableError as exc:
            return {"category": "not-resumable", "message": str(exc), "seconds": time.monotonic() - start}
        except ConfigError as exc:
            return {"category": "refused", "message": str(exc), "seconds": time.monotonic() - start}
        _steps(s, seed, asks)
        state = json.loads(json.dumps(s.state_dict()))
        full = _steps(s, seed, asks)
        np.random.seed()  # a new process finds another global state
        resumed = build()
        resumed.load_state_dict(state)
        again = _steps(resumed, seed, asks)
        if again != full:
            first = next(i for i, (a, b) in enumerate(zip(full, again)) if a != b)
            result = {"category": "failure", "message": f"the resumed run differs from ask {asks + first} on"}
        elif time.monotonic() - start > slow:
            result = {"category": "slow", "message": f"{time.monotonic() - start:.0f} s"}
    except Timeout as exc:
        result = {"category": "slow", "message": str(exc)}
    except Exception as exc:  # noqa: BLE001 - the sweep records every failure and goes on
        result = {"category": "failure", "message": f"{type(exc).__name__}: {str(exc)[:300]}"}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    result["seconds"] = time.monotonic() - start
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", nargs="+", help="optimizers to check (default: the whole registry)")
    parser.add_argument("--asks", type=int, default=20, help="asks/tells before the save, and after it")
    parser.add_argument("--slow", type=float, default=20.0, help="seconds per check above which an optimizer is slow")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per optimizer")
    parser.add_argument("--out", help="JSON file for the results (e.g. benchmarks/results/nevergrad_registry.json)")
    args = parser.parse_args()
    import nevergrad

    names = args.names or nevergrad_optimizers()
    results: dict[str, dict[str, Any]] = {}
    start = time.monotonic()
    for i, name in enumerate(names, 1):
        results[name] = check_optimizer(name, args.asks, slow=args.slow, timeout=args.timeout)
        r = results[name]
        print(f"[{i}/{len(names)}] {name}: {r['category']} ({r['seconds']:.1f} s) {r['message'][:160]}", flush=True)
    counts = Counter(r["category"] for r in results.values())
    packages = Counter(r["package"] for r in results.values() if r["category"] == "missing-package")
    print(f"\n{len(names)} optimizers, {time.monotonic() - start:.0f} s:")
    for category in CATEGORIES:
        which = ""
        if category == "missing-package":
            which = " (" + ", ".join(f"{p} {n}" for p, n in sorted(packages.items())) + ")"
        elif category in ("slow", "refused", "failure") and counts[category]:
            which = " (" + ", ".join(n for n, r in results.items() if r["category"] == category) + ")"
        print(f"  {category:<16}{counts[category]:>4}{which}")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({
            "nevergrad": nevergrad.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "asks": args.asks, "slow_seconds": args.slow, "counts": {c: counts[c] for c in CATEGORIES},
            "missing_packages": dict(sorted(packages.items())), "optimizers": results,
        }, indent=1) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
