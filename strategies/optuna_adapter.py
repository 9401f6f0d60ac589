"""Any Optuna sampler as a strategy: ``optuna:TPESampler``, ``optuna:NSGAIISampler``, ``optuna:CmaEsSampler``...

The architecture is optimised through the search space's flat vector of categorical choices
(:meth:`CellSearchSpace.cardinalities`), one Optuna parameter per choice that has more than one
option (``c000``, ``c001``, ...), so every candidate decodes to a valid architecture. The strategy
drives an in-memory Optuna study through its ask/tell interface (``study.ask(distributions)``,
``study.tell``); the sampler is built with the options of the search config, forwarded to its
constructor (checked against its signature: an unknown option is refused with the valid ones).
Two encodings of a choice:

* ``categorical``: a ``CategoricalDistribution`` over the option indices. TPE, NSGA-II/III and the
  GP sampler model categories as such (no order between ops);
* ``ordinal``: an ``IntDistribution`` from 0 to the number of options minus 1. CMA-ES and QMC
  model numbers only: given categorical parameters they sample them independently at random.

Measured on the shared strategy test objective (gtn-nas; best fraction of a hidden target's
choices matched within 300 trials told one at a time; a random architecture scores 0.11 +- 0.06),
mean over seeds (standard error), ``python benchmarks/optuna_encodings.py --seeds N``:

================  ===============  ===============  =====
sampler           categorical      ordinal          seeds
================  ===============  ===============  =====
TPESampler        0.407 (0.016)    0.393 (0.017)    10
NSGAIISampler     0.364 (0.007)    0.378 (0.007)    30
NSGAIIISampler    0.377 (0.010)    0.360 (0.012)    10
RandomSampler     0.320 (0.009)    0.313 (0.009)    10
CmaEsSampler      0.327 (0.016)    0.387 (0.017)    5
QMCSampler        0.320 (0.008)    0.320 (0.008)    5
================  ===============  ===============  =====

Hence the defaults: ``categorical`` for every sampler that models categories (TPE, NSGA-II/III,
GP, random, brute force): the encodings differ by less than two standard errors there, the
categorical one states the truth (operations have no order) and TPE runs twice as fast with it
(4.6 vs 8.6 s per 300 trials); ``ordinal`` for CMA-ES and QMC, which draw categorical parameters at
random (CMA-ES scores as random search with them, 0.33 vs 0.39). The option ``encoding`` overrides
the default. QMC is scrambled by default (Optuna's default, unscrambled, ignores the seed: every
search seed would propose the same candidates); as a space-filling design it scores as random.
``GPSampler`` is not in the table: on this 30-parameter space it takes 4 to 14 s per ask after its
10 start-up trials (2 shared cores, either encoding), so 300 trials take the better part of an hour;
a warning says so when it is built.

Several objectives: the study is created at the first ask with one ``maximize`` direction per
objective, so the multi-objective samplers (TPE as MOTPE, NSGA-II, NSGA-III, GP, random, QMC,
brute force) work directly on the values the search tells; a sampler that cannot (CMA-ES) is
refused when the search declares them (:meth:`OptunaStrategy.set_objectives`), found by the probe
below rather than by a list. A failed candidate is told ``TrialState.FAIL``, and so is an
infeasible one (a candidate that broke a constraint such as a parameter bound was never trained,
so it has no objective values that an Optuna ``constraints_func`` could weigh; told as a failure,
no sampler models it as good). Candidates in flight are Optuna's running trials (TPE's constant
liar, NSGA-II's generations and QMC's sample ids all know of them).

State: the sampler's state lives in the study (its trials and system attributes, which the CMA-ES
sampler fills with pickled optimizers) and in seeded ``RandomState`` objects; gtn-search reads no
pickle back. The state is therefore the ask/tell event log; restoring re-creates the sampler with
the same seed (derived from the strategy seed) and replays the log through ``study.ask`` and
``study.tell``, checking that every replayed ask proposes the saved candidate. Replay costs one
ask/tell per past event: after 300 trials, TPE restores in 7 s (the run took 8 s), NSGA-II in 2 s. A sampler that would not replay is refused when the strategy is built: a
probe runs it twice from the same settings past its start-up trials (random ones) with two
candidates in flight and failures, and both runs must propose the same candidates; otherwise
:class:`~gtn_search.errors.NotResumableError`, or
:class:`~gtn_search.errors.MissingPackageError` / :class:`~gtn_search.errors.ConfigError` with one
line that says why and what to choose instead. Samplers that need what a strategy cannot give
(``GridSampler``'s grid, ``PartialFixedSampler``'s fixed parameters and base sampler) are refused
by name. Optuna's per-trial INFO log lines and its experimental warnings are silenced only around
the strategy's own calls into Optuna; the caller's logging settings are left as they were.
"""

from __future__ import annotations

import copy
import inspect
import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import numpy as np

from gtn_search.errors import (
    ConfigError,
    MissingPackageError,
    NotResumableError,
    UnknownNameError,
    did_you_mean,
)
from gtn_search.registry import STRATEGIES
from gtn_search.seeding import derive_seed
from search_spaces.architecture import Architecture
from search_spaces.space import CellSearchSpace
from strategies.base import Candidate, Strategy, replay_mismatch

PREFIX = "optuna:"
INSTALL = "pip install 'gtn-search[optuna]'"
ENCODINGS = ("categorical", "ordinal")
#: the sampler suggested instead of one that is refused (one that handles several objectives too)
ALTERNATIVE = "TPESampler"
#: samplers that model numbers only: given categorical parameters, they draw them independently at random
NUMERIC_ONLY = ("CmaEsSampler", "QMCSampler")
#: the default encoding of each sampler other than categorical (see the measurement in the module docstring)
DEFAULT_ENCODING = {name: "ordinal" for name in NUMERIC_ONLY}
#: options whose Optuna default would not suit a strategy: QMC's Sobol sequence is unscrambled by default
#: (so that parallel workers agree without a seed), and then ignores the seed: every search seed would
#: propose the same candidates
DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {"QMCSampler": {"scramble": True}}
#: samplers that need something a strategy cannot give them, and why
REFUSED = {
    "GridSampler": "needs its grid (search_space), one list of values per parameter, which a strategy over a "
                   "search space of architectures cannot give; choose optuna:BruteForceSampler (every "
                   "choice vector once, in random order) or optuna:TPESampler",
    "PartialFixedSampler": "wraps a base sampler with some parameters fixed, neither of which a search config can "
                           "give; choose the base sampler itself, e.g. optuna:TPESampler",
}
#: constructor options the strategy sets itself, and why
RESERVED = {
    "seed": "the sampler is seeded from the search's seed (seed: in the search config)",
    "constraints_func": "infeasible candidates are told to the sampler as failed trials (they were never "
                        "trained, so there are no values to constrain)",
}
#: asks of the probe beyond the sampler's start-up trials (twice, when a strategy is built)
PROBE_ASKS = 8
#: ... fewer, but at least PROBE_MIN_ASKS, once those took more than PROBE_SECONDS (a slow sampler)
PROBE_MIN_ASKS = 2
PROBE_SECONDS = 5.0
#: candidates in flight during the probe
PROBE_IN_FLIGHT = 2
#: a probe slower than this per ask after the start-up trials logs a warning
SLOW_ASK_SECONDS = 0.25

log = logging.getLogger(__name__)
#: the probe's verdict per sampler, options, encoding, space and objectives: None (fine) or the error
_PROBED: dict[tuple[Any, ...], tuple[type[ConfigError], str] | None] = {}


def _optuna(sampler: str = "<Sampler>") -> ModuleType:
    """``optuna``, or a one-line :class:`MissingPackageError` saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise MissingPackageError(f"strategy {PREFIX}{sampler} needs the package 'optuna': {INSTALL}") from None
    return optuna


def _sampler_classes() -> dict[str, type]:
    """Every concrete sampler class exported by ``optuna.samplers``, by name."""
    optuna = _optuna()
    found = {}
    for name in getattr(optuna.samplers, "__all__", dir(optuna.samplers)):
        cls = getattr(optuna.samplers, name, None)
        if inspect.isclass(cls) and issubclass(cls, optuna.samplers.BaseSampler) and not inspect.isabstract(cls):
            found[name] = cls
    return found


def optuna_samplers() -> list[str]:
    """Names of the Optuna samplers usable as ``optuna:<Name>`` (those refused by name left out)."""
    return sorted(set(_sampler_classes()) - set(REFUSED))


def sampler_options(cls: type) -> list[str]:
    """The keyword options of a sampler's constructor that a search config may set."""
    params = inspect.signature(cls.__init__).parameters.values()
    return [p.name for p in params if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
            and p.name not in RESERVED]


@contextmanager
def _quiet() -> Iterator[None]:
    """Call into Optuna without its per-trial INFO lines and experimental warnings.

    Only the ``optuna`` logger's level is raised, and only for the block; warnings stay visible.
    """
    optuna = _optuna()
    logger = logging.getLogger("optuna")
    level = logger.level
    if logger.getEffectiveLevel() < logging.WARNING:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        logger.setLevel(level)


@STRATEGIES.register("optuna")
class OptunaStrategy(Strategy):
    """An Optuna sampler over the space's choice vector (also spelt optuna:<Sampler>)."""

    multi_objective = True

    def __init__(self, space: CellSearchSpace, seed: int = 0, sampler: str = ALTERNATIVE,
                 encoding: str | None = None, **options: Any) -> None:
        super().__init__(space, seed)
        self.sampler_name = str(sampler)
        _optuna(self.sampler_name)  # or a one-line MissingPackageError
        classes = _sampler_classes()
        if self.sampler_name in REFUSED:
            raise ConfigError(f"strategy {PREFIX}{self.sampler_name} {REFUSED[self.sampler_name]}")
        if self.sampler_name not in classes:
            names = optuna_samplers()
            raise UnknownNameError(f"strategy '{PREFIX}{self.sampler_name}': unknown Optuna sampler "
                                   f"'{self.sampler_name}'{did_you_mean(self.sampler_name, names)}; known: "
                                   f"{', '.join(names)}")
        self._cls = classes[self.sampler_name]
        encoding = DEFAULT_ENCODING.get(self.sampler_name, "categorical") if encoding is None else encoding
        if encoding not in ENCODINGS:
            raise ConfigError(f"strategy {PREFIX}{self.sampler_name}: 'encoding' must be 'categorical' or "
                              f"'ordinal', got {encoding!r}")
        self.encoding = encoding
        valid = sampler_options(self._cls)
        for key in options:
            if key in RESERVED:
                raise ConfigError(f"strategy {PREFIX}{self.sampler_name}: option '{key}' cannot be set: "
                                  f"{RESERVED[key]}")
            if key not in valid:
                raise ConfigError(f"strategy {PREFIX}{self.sampler_name}: unknown option '{key}'"
                                  f"{did_you_mean(key, valid)}; valid: {', '.join(valid + ['encoding'])}")
        self.options = dict(options)
        #: the sampler's keyword arguments: the options (for a sampler of numbers, no warning per parameter
        #: and trial sampled at random: one is logged here instead)
        quiet = self.sampler_name in NUMERIC_ONLY and "warn_independent_sampling" in valid
        self._kwargs: dict[str, Any] = {"warn_independent_sampling": False} if quiet else {}
        self._kwargs.update(DEFAULT_OPTIONS.get(self.sampler_name, {}))
        self._kwargs.update(self.options)
        if self.sampler_name in NUMERIC_ONLY and encoding == "categorical":
            log.warning("strategy %s%s models numbers only: with encoding categorical it draws every choice at "
                        "random (the default encoding ordinal lets it model them)", PREFIX, self.sampler_name)
        cards = np.array(space.cardinalities())
        self._cards = cards
        self._free = [int(i) for i in np.flatnonzero(cards > 1)]  # entries with a real choice
        self._events: list[list[Any]] = []
        self._trials: dict[int, Any] = {}
        self._study: Any = None
        self._make_sampler()  # bad option values fail here, with one line
        self._probe(1)

    # -- Optuna objects -------------------------------------------------------------------------
    def _make_sampler(self) -> Any:
        """A fresh sampler from the options (copied: stateful option objects start afresh each time)."""
        seed = derive_seed(self.seed, "optuna") % (2**32)
        try:
            with _quiet():
                return self._cls(**copy.deepcopy(self._kwargs), seed=seed)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"strategy {PREFIX}{self.sampler_name}: bad options {self.options}: "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None

    def _make_study(self, objectives: int) -> Any:
        optuna = _optuna(self.sampler_name)
        with _quiet():
            return optuna.create_study(storage=optuna.storages.InMemoryStorage(), sampler=self._make_sampler(),
                                       study_name="gtn-search", directions=["maximize"] * objectives)

    def _distributions(self) -> dict[str, Any]:
        dist = _optuna(self.sampler_name).distributions
        if self.encoding == "categorical":
            return {f"c{i:03d}": dist.CategoricalDistribution(tuple(range(int(self._cards[i])))) for i in self._free}
        return {f"c{i:03d}": dist.IntDistribution(0, int(self._cards[i]) - 1) for i in self._free}

    def _study_ask(self, study: Any) -> tuple[Any, list[int]]:
        """Ask ``study`` for a trial; return it and its choice vector."""
        with _quiet():
            trial = study.ask(self._distributions())
        vector = [0] * len(self._cards)
        for i in self._free:
            vector[i] = int(trial.params[f"c{i:03d}"])
        return trial, vector

    def _study_tell(self, study: Any, trial: Any, values: list[float] | None) -> None:
        """Tell ``study`` a trial's maximised values, or that it failed (None)."""
        optuna = _optuna(self.sampler_name)
        with _quiet():
            if values is None:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(trial, values if len(values) > 1 else values[0])

    def _current_study(self) -> Any:
        """The strategy's study, created at the first ask (when the objectives are known)."""
        if self._study is None:
            self._study = self._make_study(self.num_objectives)
        return self._study

    # -- the up-front check ---------------------------------------------------------------------
    def _startup_trials(self) -> int:
        """How many first trials the sampler draws at random (its n_startup_trials or population)."""
        bound = inspect.signature(self._cls).bind_partial(**self._kwargs)
        bound.apply_defaults()
        counts = [bound.arguments.get(k) for k in ("n_startup_trials", "population_size")]
        return max([c for c in counts if isinstance(c, int)], default=0)

    def _probe(self, objectives: int) -> None:
        """Refuse the sampler now if it needs a missing package, fails here, or does not replay.

        Runs it twice from the strategy's settings on a synthetic objective (with ``objectives``
        values) for its start-up trials plus :data:`PROBE_ASKS` (fewer if slow), with
        :data:`PROBE_IN_FLIGHT` candidates in flight and every fifth one failed; both runs must
        propose the same candidates, as a resumed study replays them. The verdict is cached per sampler, settings, space and objectives.
        """
        key = (self.sampler_name, self.encoding, repr(sorted(self.options.items())), tuple(self._cards.tolist()),
               objectives)
        if key not in _PROBED:
            _PROBED[key] = self._probe_runs(objectives)
        verdict = _PROBED[key]
        if verdict is not None:
            raise verdict[0](verdict[1])

    def _probe_runs(self, objectives: int) -> tuple[type[ConfigError], str] | None:
        name = f"{PREFIX}{self.sampler_name}"
        startup = self._startup_trials()
        asks = startup + PROBE_ASKS
        try:
            first, seconds = self._probe_run(objectives, asks, startup, limit=PROBE_SECONDS)
            second, _ = self._probe_run(objectives, len(first), startup)
        except ImportError as exc:
            package = (getattr(exc, "name", None) or "?").split(".")[0]
            return MissingPackageError, (f"strategy {name} needs the package '{package}' (pip install {package}); "
                                         f"or choose another sampler, e.g. {PREFIX}{ALTERNATIVE}")
        except Exception as exc:  # noqa: BLE001 - whatever it is, the sampler cannot run here
            why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            if objectives > 1:
                return ConfigError, (
                    f"strategy {name} cannot optimise {objectives} objectives ({why}); add 'scalarization: "
                    f"{{weights: {{...}}}}' to the search config to combine them, or choose a multi-objective "
                    f"sampler, e.g. {PREFIX}NSGAIISampler or {PREFIX}TPESampler")
            return ConfigError, (f"strategy {name} fails on this search space ({why}); choose another sampler, "
                                 f"e.g. {PREFIX}{ALTERNATIVE}")
        mismatch = replay_mismatch(name, first, second, f"another sampler, e.g. {PREFIX}{ALTERNATIVE}")
        if mismatch is not None:
            return NotResumableError, mismatch
        if seconds > SLOW_ASK_SECONDS:
            log.warning("strategy %s is slow: %.1f s per ask and tell on this space after its %d start-up trials "
                        "(it grows with the history; resuming replays every past ask)", name, seconds, startup)
        return None

    def _probe_run(self, objectives: int, asks: int, startup: int,
                   limit: float | None = None) -> tuple[list[list[int]], float]:
        """Candidates of one probe run on a synthetic objective, and seconds per ask after start-up.

        With ``limit``, no new candidate is asked once :data:`PROBE_MIN_ASKS` past the start-up
        took longer than ``limit`` seconds (a slow sampler such as the GP is probed briefly).
        """
        study = self._make_study(objectives)
        weights = np.random.RandomState(7).uniform(size=(objectives, len(self._cards)))
        vectors: list[list[int]] = []
        in_flight: list[tuple[Any, list[int]]] = []
        asked, start = 0, time.monotonic()

        def more() -> bool:
            late = limit is not None and asked >= startup + PROBE_MIN_ASKS and time.monotonic() - start > limit
            return asked < asks and not late

        while in_flight or more():
            while len(in_flight) < PROBE_IN_FLIGHT and more():
                if asked == startup:
                    start = time.monotonic()
                in_flight.append(self._study_ask(study))
                asked += 1
            trial, vector = in_flight.pop(0)
            values = np.sin(weights @ np.array(vector, dtype=float) * 12.9898) % 1.0
            self._study_tell(study, trial, None if len(vectors) % 5 == 4 else [float(v) for v in values])
            vectors.append(vector)
        return vectors, (time.monotonic() - start) / max(1, asked - startup)

    # -- Strategy hooks -------------------------------------------------------------------------
    def set_objectives(self, count: int) -> None:
        """Declare the objectives; a sampler that cannot optimise ``count`` of them is refused here."""
        super().set_objectives(count)
        if count > 1:
            self._probe(count)

    def _ask(self) -> Architecture:
        trial, vector = self._study_ask(self._current_study())
        number = self.num_asked
        self._trials[number] = trial
        self._events.append(["ask", number, [vector[i] for i in self._free]])
        return self.decode(vector)

    def _tell(self, candidate: Candidate, score: float | tuple[float, ...] | None) -> None:
        values = None if score is None else [float(v) for v in (score if isinstance(score, tuple) else (score,))]
        self._study_tell(self._current_study(), self._trials.pop(candidate.number), values)
        self._events.append(["tell", candidate.number, values])

    def _tell_infeasible(self, candidate: Candidate, violations: dict[str, str]) -> None:
        """An infeasible candidate is a failed trial for the sampler (see the module docstring)."""
        self._tell(candidate, None)

    def _state(self) -> dict[str, Any]:
        return {"sampler": self.sampler_name, "encoding": self.encoding, "events": self._events}

    def _load_state(self, state: dict[str, Any]) -> None:
        if (state["sampler"], state["encoding"]) != (self.sampler_name, self.encoding):
            raise ConfigError(f"saved state is for Optuna sampler {state['sampler']} ({state['encoding']}), "
                              f"not {self.sampler_name} ({self.encoding})")
        study = self._make_study(self.num_objectives)
        trials: dict[int, Any] = {}
        for kind, number, value in state["events"]:
            if kind == "ask":
                trial, vector = self._study_ask(study)
                if [vector[i] for i in self._free] != list(value):
                    raise NotResumableError(
                        f"cannot restore Optuna sampler {self.sampler_name}: replaying ask {number} gave a different "
                        f"candidate (was the study made with other versions of gtn-search, optuna or numpy?); "
                        f"continue it with those, or start a new study")
                trials[number] = trial
            else:
                self._study_tell(study, trials.pop(number), value)
        self._study, self._trials, self._events = study, trials, [list(e) for e in state["events"]]

