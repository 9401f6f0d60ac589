"""Any Nevergrad optimizer as a strategy: ``ng:NGOpt``, ``ng:TwoPointsDE``, ``ng:DiscreteOnePlusOne``...

The architecture is optimised through the search space's flat vector of categorical choices
(:meth:`CellSearchSpace.cardinalities`), so every candidate decodes to a valid architecture. Two
encodings of that vector:

* ``ordinal`` (default): one bounded integer per choice (``ng.p.Array(...).set_integer_casting()``).
  Nevergrad recognises the parametrization as discrete, so ``NGOpt`` selects a discrete (1+1)
  optimizer, and the discrete optimizers mutate one choice at a time;
* ``categorical``: deterministic choices as in ``ng.p.Choice(deterministic=True)``: one weight per
  option, the argmax is the choice. The weights of all choices live in one flat ``ng.p.Array``
  (a ``ng.p.Tuple`` of 30 ``Choice`` parameters is the same representation but costs about 150 ms
  per ask/tell in Nevergrad's parameter bookkeeping, the flat array about 1 ms). Nevergrad sees a
  continuous array: small steps rarely change an argmax, so many asks repeat an architecture
  (served from the study's cache) and ``NGOpt`` picks a continuous model-based optimizer.

Measured on the shared strategy test objective (300 trials, 3 seeds, best fraction of a hidden
target's choices matched; chance is 0.17 +- 0.06): NGOpt 0.20-0.40 categorical vs 0.57-0.60
ordinal; DiscreteOnePlusOne 0.33-0.47 vs 0.50-0.67; TwoPointsDE and the portfolio are similar
under both encodings. Hence the ordinal default.

Nevergrad minimises, so it is told ``-score``; a failed candidate is told ``+inf``. Its randomness
comes from a ``RandomState`` seeded by the strategy seed.

Several objectives (``set_objectives(n)``, n > 1): the optimizer is told ``num_objectives = n``
before its first ask (so ``NGOpt`` chooses knowing it) and each result as the list of losses
(negated values); Nevergrad keeps the Pareto front and hands its inner optimizer a hypervolume
loss, with the reference point set from the first 15 tells (its ``auto_bound``). A failed or
infeasible candidate has no loss vector, and none can be made up: ``[inf, ...]`` (or any vector
told before the first success) sets the reference point during the auto-bound phase, so every
later hypervolume would be infinite, NaN or meaningless, and a finite "worst" vector can land on
Nevergrad's Pareto front. Holding failures back until a success arrives deadlocks the sequential
optimizers (scipy and ``cma.fmin`` recasts, e.g. ``Carola8``), which need each tell before the
next ask. So a failure is told to the **inner optimizer only**, as the loss ``5e20`` (Nevergrad's
own clip for an infinite loss, what a failure becomes in single-objective mode), with the
bookkeeping of :meth:`Optimizer.tell` (ask set, tell count) but not its Pareto front, reference
point or archive; that uses three private members of nevergrad's ``Optimizer``, pinned by
``.ci/constraints.txt`` (nevergrad 1.0.12) and checked by ``tests/test_mo_strategies.py``. The
log records it as a scalar loss (successes are lists), so a replay is exact.

State: Nevergrad optimizers cannot be serialised without pickle, which gtn-search refuses to read
back. The state is therefore the optimizer's ask/tell event log; restoring re-creates the
optimizer with the same seed and replays the log. Replay costs one ask/tell per past event.

Replay is exact only if the optimizer draws nothing the seed does not fix. Many Nevergrad
optimizers also draw from numpy's *global* random state: the lognormal mutation rate
(``BigLognormalDiscreteOnePlusOne``), the smoothing mutations of the Lengler optimizers
(``CMAL2``, ``CMALL``), Voronoi DE, NgIoh's random rescalings, building a parameter; some at
import time (``PolyLN``'s scales); ``cma.fmin`` (``CmaFmin2``, chained in ``Carola8``) even
reseeds it from the clock, in the background thread of a recast optimizer. So the optimizer gets
a private global numpy state, seeded from the strategy seed and swapped in only around its own
calls (its background threads are let finish their step first; ``cma``'s default seed is NaN,
"leave the global state alone", meanwhile), and Nevergrad is imported under a fixed global seed;
the caller's global state is left as it was. A restored optimizer keeps the budget it was made
with, so a study extended with more trials replays too.

What still cannot replay (seeds taken from the clock or the OS inside third-party code), needs a
missing optional package, or fails on this space is refused when the strategy is built, before a
study starts: a short probe runs the optimizer twice for a few asks (cached per process) and
raises :class:`~gtn_search.errors.NotResumableError`,
:class:`~gtn_search.errors.MissingPackageError` or :class:`~gtn_search.errors.ConfigError` with
one line that says why and what to choose instead. So is, by a rule, an optimizer holding a
meta-model that would start modelling within its budget where numpy breaks it (nevergrad 1.0.12
calls ``float()`` on a 1-element array, an error from numpy 2.4 on): the failure comes only after
tens to hundreds of asks, too late for the probe.
"""

from __future__ import annotations

import io
import logging
import re
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from types import ModuleType
from typing import Any

import numpy as np

from gtn_search.errors import ConfigError, MissingPackageError, NotResumableError, UnknownNameError, did_you_mean
from gtn_search.registry import STRATEGIES
from gtn_search.seeding import derive_seed
from search_spaces.architecture import Architecture
from search_spaces.space import CellSearchSpace
from strategies.base import Candidate, Strategy, replay_mismatch

PREFIX = "ng:"
#: asks (and tells) of the probe run, twice, when a strategy is built
PROBE_ASKS = 12
#: a probe slower than this per ask logs a warning (BO and BOSplit take about 1 s)
SLOW_ASK_SECONDS = 0.25
#: the optimizer suggested instead of one that is refused
ALTERNATIVE = "NGOpt"
#: pip names of optional packages whose import name differs
PIP_NAMES = {"ax": "ax-platform", "bayes_optim": "bayes-optim", "pybobyqa": "Py-BOBYQA", "pysot": "pySOT",
             "poap": "pySOT", "skopt": "scikit-optimize", "sklearn": "scikit-learn", "bayes_opt": "bayesian-optimization"}
#: the seed of numpy's global state while Nevergrad is imported
IMPORT_SEED = 0
#: with several objectives, the loss a failed candidate gets (Nevergrad's clip for an infinite loss)
FAILED_LOSS = 5.0e20
#: the private members of nevergrad's Optimizer that telling a failure with several objectives uses
_PRIVATE_TELL = ("_asked", "_num_tell", "_num_tell_not_asked", "_internal_tell_candidate", "_internal_tell_not_asked")

log = logging.getLogger(__name__)
#: the probe's verdict per optimizer, settings and space: None (fine) or the error to raise
_PROBED: dict[tuple[Any, ...], tuple[type[ConfigError], str] | None] = {}


@contextmanager
def _global_numpy_state(state: Any) -> Iterator[list[Any]]:
    """Run a block under numpy's global random ``state``; yield a list whose item is its state after.

    ``cma`` seeds numpy's global state from the clock unless told a seed; in the block its default
    seed is NaN ("leave the global state alone"), so CMA runs started by ``cma.fmin`` (``CmaFmin2``)
    draw from ``state`` too.
    """
    saved = np.random.get_state()
    cma_options = sys.modules.get("cma.options_parameters")
    cma_defaults = cma_options.cma_default_options if cma_options is not None else {}
    cma_seed = cma_defaults.get("seed")
    np.random.set_state(state)
    if cma_defaults:
        cma_defaults["seed"] = float("nan")
    box = [state]
    try:
        yield box
    finally:
        _wait_for_recast_threads()
        box[0] = np.random.get_state()
        np.random.set_state(saved)
        if cma_defaults:
            cma_defaults["seed"] = cma_seed


def _wait_for_recast_threads(limit: float = 60.0) -> None:
    """Let the background threads of Nevergrad's recast optimizers (scipy, cma.fmin) finish their step.

    After a tell, such a thread computes its next point while the caller goes on; it must do so
    under the optimizer's private global random state. It is idle once it waits for its next tell.
    """
    recaster = sys.modules.get("nevergrad.optimization.recaster")
    if recaster is None:
        return
    deadline = time.monotonic() + limit
    for thread in threading.enumerate():
        if isinstance(thread, recaster._MessagingThread):
            tells = thread.messages_tell
            while thread.is_alive() and not (tells.empty() and tells.not_empty._waiters):
                if time.monotonic() > deadline:
                    return
                time.sleep(1e-4)


def _nevergrad() -> ModuleType:
    """``nevergrad``, imported under a fixed global numpy seed (some optimizers draw from it at import)."""
    if "nevergrad" not in sys.modules:
        with _global_numpy_state(np.random.RandomState(IMPORT_SEED).get_state()):
            import cma  # noqa: F401 - a dependency of nevergrad, imported here so its seed can be set
            import nevergrad  # noqa: F401
    return sys.modules["nevergrad"]


def nevergrad_optimizers() -> list[str]:
    """Names of every optimizer in ``nevergrad.optimizers.registry``."""
    return sorted(_nevergrad().optimizers.registry)


def unknown_optimizer(name: str, names: list[str]) -> UnknownNameError:
    """A short 'unknown optimizer' error with the closest name (the registry has 500+, not listed)."""
    return UnknownNameError(f"strategy '{PREFIX}{name}': unknown Nevergrad optimizer '{name}'"
                            f"{did_you_mean(name, names)}; list the {len(names)} names with: "
                            f"gtn-search strategies --nevergrad")


def missing_package(name: str, exc: BaseException) -> str:
    """The one-line refusal of an optimizer whose optional package is not installed."""
    module = getattr(exc, "name", None)
    if not module:  # some say it in words: "Please install fcmaes (pip install fcmaes) to use ..."
        found = re.search(r"pip install ([\w.-]+)|named '([\w.]+)'", str(exc))
        module = next(g for g in found.groups() if g) if found else None
    if not module:
        return (f"strategy {PREFIX}{name} needs a package that is not installed ({exc!r}); "
                f"or choose another optimizer, e.g. {PREFIX}{ALTERNATIVE}")
    pip = PIP_NAMES.get(module.split(".")[0], module.split(".")[0])
    return (f"strategy {PREFIX}{name} needs the package '{pip}' (pip install {pip}); "
            f"or choose another optimizer, e.g. {PREFIX}{ALTERNATIVE}")


def _metamodel_breaks() -> bool:
    """Whether numpy refuses ``float()`` of a 1-element array, as Nevergrad's meta-models call it."""
    try:
        float(np.zeros(1))  # type: ignore[arg-type]
    except TypeError:
        return True
    return False


def _metamodel_starts(optimizer: Any) -> bool:
    """Whether ``optimizer`` is a Nevergrad meta-model that starts modelling within its budget.

    It does once it has as many points as its model needs (Nevergrad's own rule, copied).
    """
    if not isinstance(optimizer, _nevergrad().optimizers._MetaModel):
        return False
    dim = optimizer.dimension
    size = int(dim * (dim - 1) / 2 + 2 * dim + 1)
    if optimizer.degree != 2:
        size = 50 if optimizer.algorithm in ("image", "voxelize") else int(np.power(size, optimizer.degree / 2.0))
    return optimizer.budget is None or optimizer.budget >= size


def _sub_optimizers(optimizer: Any) -> Iterator[Any]:
    """An optimizer and every optimizer it holds (portfolios, chains, NGOpt's choice, meta-models)."""
    base = _nevergrad().optimizers.base.Optimizer
    seen: set[int] = set()
    stack = [optimizer]
    while stack:
        opt = stack.pop()
        if id(opt) in seen:
            continue
        seen.add(id(opt))
        yield opt
        for value in vars(opt).values():
            items = value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else [value]
            stack.extend(item for item in items if isinstance(item, base))


@STRATEGIES.register("nevergrad")
class NevergradStrategy(Strategy):
    """A Nevergrad optimizer over the space's choice vector (also spelt ng:<Optimizer>)."""

    multi_objective = True

    def __init__(
        self,
        space: CellSearchSpace,
        seed: int = 0,
        optimizer: str = "NGOpt",
        budget: int | None = None,
        num_workers: int = 1,
        encoding: str = "ordinal",
    ) -> None:
        super().__init__(space, seed)
        names = nevergrad_optimizers()
        if optimizer not in names:
            raise unknown_optimizer(str(optimizer), names)
        if budget is not None and (not isinstance(budget, int) or budget < 1):
            raise ConfigError(f"nevergrad: 'budget' must be a positive integer or null, got {budget!r}")
        if not isinstance(num_workers, int) or num_workers < 1:
            raise ConfigError(f"nevergrad: 'num_workers' must be a positive integer, got {num_workers!r}")
        if encoding not in ("categorical", "ordinal"):
            raise ConfigError(f"nevergrad: 'encoding' must be 'categorical' or 'ordinal', got {encoding!r}")
        self.encoding = encoding
        cards = np.array(space.cardinalities())
        self._free = np.flatnonzero(cards > 1)  # entries with a real choice
        self._cards = cards
        self._offsets = np.concatenate([[0], np.cumsum(cards[self._free])])
        self.optimizer_name = optimizer
        self.budget = budget
        self.num_workers = num_workers
        self._events: list[list[Any]] = []
        self._by_number: dict[int, Any] = {}
        self._probe()
        self._optimizer = self._make_optimizer()

    def _make_optimizer(self):  # type: ignore[no-untyped-def]
        """A fresh optimizer seeded by the strategy seed, with its own private global numpy state."""
        ng = _nevergrad()
        self._globals = np.random.RandomState(derive_seed(self.seed, "nevergrad-global") % (2**32)).get_state()
        with self._calling():  # building a parameter draws from the global state too
            if self.encoding == "categorical":
                param = ng.p.Array(shape=(int(self._offsets[-1]),))
            else:
                upper = (self._cards[self._free] - 1).astype(float)
                param = ng.p.Array(shape=(len(self._free),), lower=np.zeros_like(upper),
                                   upper=upper).set_integer_casting()
            param.random_state = np.random.RandomState(self.seed % (2**32))
            optimizer = ng.optimizers.registry[self.optimizer_name](
                parametrization=param, budget=self.budget, num_workers=self.num_workers
            )
            if self.num_objectives > 1:
                optimizer.num_objectives = self.num_objectives
            return optimizer

    def set_objectives(self, count: int) -> None:
        """Declare the number of objectives; with several, the optimizer is re-made (and probed) for them."""
        before = self.num_objectives
        super().set_objectives(count)
        if count > 1 and not all(hasattr(self._optimizer, name) for name in _PRIVATE_TELL):
            raise ConfigError(
                f"strategy {PREFIX}{self.optimizer_name}: this nevergrad ({_nevergrad().__version__}) lacks what "
                f"gtn-search needs to tell it a failed candidate with several objectives (tested with 1.0.12); "
                f"install nevergrad==1.0.12, or choose mo-evolution")
        if count != before:
            self._probe()
            self._optimizer = self._make_optimizer()

    @contextmanager
    def _calling(self) -> Iterator[None]:
        """Call into the optimizer: warnings off, its private global numpy state swapped in."""
        with warnings.catch_warnings(), _global_numpy_state(self._globals) as after:
            warnings.simplefilter("ignore")
            yield
        self._globals = after[0]

    def _ng_ask(self) -> tuple[Any, list[int]]:
        with self._calling():
            cand = self._optimizer.ask()
        return cand, self._vector(np.asarray(cand.value, dtype=float))

    def _vector(self, value: np.ndarray) -> list[int]:
        """The choice vector for a Nevergrad value (argmax per choice, or rounded integers)."""
        vec = np.zeros(len(self._cards), dtype=int)
        if self.encoding == "categorical":
            choices = [int(np.argmax(value[a:b])) for a, b in zip(self._offsets[:-1], self._offsets[1:])]
        else:
            choices = np.rint(value).astype(int).tolist()
        vec[self._free] = np.clip(choices, 0, self._cards[self._free] - 1)
        return [int(v) for v in vec]

    def _ng_tell(self, cand: Any, loss: float | list[float]) -> None:
        if self.num_objectives > 1 and not isinstance(loss, list):
            self._ng_tell_failed(cand, loss)
            return
        with self._calling():
            self._optimizer.tell(cand, loss)

    def _ng_tell_failed(self, cand: Any, loss: float) -> None:
        """Several objectives: tell only the inner optimizer that ``cand`` failed (see the module doc).

        What :meth:`nevergrad.optimization.base.Optimizer.tell` does for a scalar loss, less the
        multi-objective preprocessing, the archive and the callbacks.
        """
        opt = self._optimizer
        with self._calling():
            cand.freeze()
            cand.loss = loss
            if cand.uid in opt._asked:
                opt._internal_tell_candidate(cand, loss)
                opt._asked.remove(cand.uid)
            else:
                opt._internal_tell_not_asked(cand, loss)
                opt._num_tell_not_asked += 1
            opt._num_tell += 1

    # -- the up-front check ---------------------------------------------------------------------
    def _probe(self) -> None:
        """Refuse the optimizer now if it needs a missing package, fails here, or does not replay.

        Runs it twice from the strategy's settings for :data:`PROBE_ASKS` asks on a synthetic loss
        (as many in flight as ``num_workers``); both runs must propose the same candidates, as a
        resumed study replays them. The verdict is cached per optimizer, settings and space.
        """
        key = (self.optimizer_name, self.encoding, self.budget, self.num_workers, tuple(self._cards.tolist()),
               self.num_objectives)
        if key not in _PROBED:
            _PROBED[key] = self._probe_runs()
        verdict = _PROBED[key]
        if verdict is not None:
            raise verdict[0](verdict[1])

    def _probe_runs(self) -> tuple[type[ConfigError], str] | None:
        name = self.optimizer_name
        try:
            with redirect_stdout(io.StringIO()):  # some print why they fail
                start = time.monotonic()
                first = self._probe_run()
                seconds = (time.monotonic() - start) / PROBE_ASKS
                second = self._probe_run()
        except Exception as exc:  # noqa: BLE001 - whatever it is, the optimizer cannot run here
            cause: BaseException | None = exc
            while cause is not None and not isinstance(cause, ImportError):  # recast ones wrap it
                cause = cause.__cause__ or cause.__context__
            if cause is not None:
                return MissingPackageError, missing_package(name, cause)
            objectives = f" with {self.num_objectives} objectives" if self.num_objectives > 1 else ""
            return ConfigError, (f"strategy {PREFIX}{name} fails on this search space{objectives} ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''}); choose another optimizer, "
                                 f"e.g. {PREFIX}{ALTERNATIVE}")
        if _metamodel_breaks() and any(_metamodel_starts(o) for o in _sub_optimizers(self._optimizer)):
            return ConfigError, (
                f"strategy {PREFIX}{name} cannot run with numpy {np.__version__}: its meta-model calls float() on "
                f"a 1-element array (a bug in nevergrad {_nevergrad().__version__}), which fails once the "
                f"meta-model starts within this budget; choose another optimizer, e.g. {PREFIX}{ALTERNATIVE}")
        mismatch = replay_mismatch(f"{PREFIX}{name}", first, second, f"another optimizer, e.g. {PREFIX}{ALTERNATIVE}")
        if mismatch is not None:
            return NotResumableError, mismatch
        if seconds > SLOW_ASK_SECONDS:
            log.warning("strategy %s%s is slow: %.1f s per ask and tell on this space already at the start (it "
                        "grows with the history; resuming replays every past ask)", PREFIX, name, seconds)
        return None

    def _probe_run(self) -> list[list[int]]:
        """Candidates of one probe run on a synthetic loss (a fixed pseudo-random function; with
        several objectives, one per objective, and some failures)."""
        self._optimizer = self._make_optimizer()
        weights = np.random.RandomState(7).uniform(size=(self.num_objectives, len(self._cards)))
        vectors, in_flight = [], []
        while len(vectors) < PROBE_ASKS:
            while len(in_flight) < self.num_workers and len(vectors) + len(in_flight) < PROBE_ASKS:
                in_flight.append(self._ng_ask())
            cand, vector = in_flight.pop(0)
            losses = [float(v) for v in np.sin(weights @ np.array(vector, dtype=float) * 12.9898) % 1.0]
            if self.num_objectives == 1:
                self._ng_tell(cand, losses[0])
            else:  # the first tell and every fourth after it: a failure
                self._ng_tell(cand, FAILED_LOSS if len(vectors) % 4 == 0 else losses)
            vectors.append(vector)
        return vectors

    # -- Strategy hooks -------------------------------------------------------------------------
    def _ask(self) -> Architecture:
        cand, vector = self._ng_ask()
        number = self.num_asked
        self._by_number[number] = cand
        self._events.append(["ask", number, vector])
        return self.decode(vector)

    def _tell(self, candidate: Candidate, score: Any) -> None:
        loss: float | list[float]
        if score is None:  # several objectives: a scalar loss, told to the inner optimizer only
            loss = float("inf") if self.num_objectives == 1 else FAILED_LOSS
        else:
            loss = -score if self.num_objectives == 1 else [-float(v) for v in score]
        self._ng_tell(self._by_number.pop(candidate.number), loss)
        self._events.append(["tell", candidate.number, loss])

    def _state(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer_name, "encoding": self.encoding, "budget": self.budget,
                "num_workers": self.num_workers, "events": self._events}

    def _load_state(self, state: dict[str, Any]) -> None:
        if (state["optimizer"], state["encoding"]) != (self.optimizer_name, self.encoding):
            raise ConfigError(f"saved state is for Nevergrad optimizer {state['optimizer']} ({state['encoding']}), "
                              f"not {self.optimizer_name} ({self.encoding})")
        # the optimizer goes on with the budget it was made with (a study extended with more trials)
        self.budget, self.num_workers = state["budget"], state["num_workers"]
        self._optimizer = self._make_optimizer()
        self._events, self._by_number = [], {}
        for kind, number, value in state["events"]:
            if kind == "ask":
                cand, vector = self._ng_ask()
                if vector != list(value):
                    raise NotResumableError(
                        f"cannot restore Nevergrad optimizer {self.optimizer_name}: replaying ask {number} gave a "
                        f"different candidate (was the study made with other versions of gtn-search, nevergrad or "
                        f"numpy?); continue it with those, or start a new study")
                self._by_number[number] = cand
            else:
                loss = [float(v) for v in value] if isinstance(value, list) else float(value)
                self._ng_tell(self._by_number.pop(number), loss)
            self._events.append([kind, number, value])


def make_strategy(name: str, space: CellSearchSpace, seed: int = 0, **options: Any) -> Strategy:
    """Instantiate a registered strategy, ``ng:<Optimizer>`` for any Nevergrad optimizer, or
    ``optuna:<Sampler>`` for any Optuna sampler."""
    named = "optimizer" if str(name).startswith(PREFIX) else "sampler" if str(name).startswith("optuna:") else None
    if named is not None and named in options:
        raise ConfigError(f"strategy '{name}': option '{named}' cannot be set in the strategy's options; it is in "
                          f"the name ({name})")
    if isinstance(name, str) and name.startswith(PREFIX):
        return NevergradStrategy(space, seed, optimizer=name[len(PREFIX):], **options)
    if isinstance(name, str) and name.startswith("optuna:"):
        from strategies.optuna_adapter import OptunaStrategy

        return OptunaStrategy(space, seed, sampler=name[len("optuna:"):], **options)
    cls = STRATEGIES.get(name, where="strategy")
    try:
        return cls(space, seed, **options)
    except TypeError as exc:
        raise ConfigError(f"strategy '{name}': bad options {sorted(options)}: {exc}") from None
