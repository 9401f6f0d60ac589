"""How a candidate is SCORED: the Evaluator interface and the built-in evaluators."""
