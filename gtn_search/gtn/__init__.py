"""Generative Teaching Networks: generator, curricula, learned inner optimiser, learners,
meta-training with exact resume, and teaching sets (the frozen curriculum evaluators train on)."""
