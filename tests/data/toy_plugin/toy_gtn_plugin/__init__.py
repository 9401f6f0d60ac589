"""A third-party strategy for gtn-search, discovered through its entry point."""

from strategies import Strategy


class HillClimb(Strategy):
    """Hill climbing: mutate the best architecture seen so far (random until the first result)."""

    def __init__(self, space, seed=0):
        super().__init__(space, seed)
        self.best = None  # (score, architecture)

    def _ask(self):
        if self.best is None:
            return self.space.sample(self.rng)
        return self.space.mutate(self.best[1], self.rng)

    def _tell(self, candidate, score):
        if score is not None and (self.best is None or score > self.best[0]):
            self.best = (score, candidate.architecture)

    def _state(self):
        return {} if self.best is None else {"score": self.best[0], "arch": self.encode(self.best[1])}

    def _load_state(self, state):
        self.best = (state["score"], self.decode(state["arch"])) if state else None
