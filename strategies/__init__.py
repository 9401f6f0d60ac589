"""How the next candidate is CHOSEN: the Strategy base and the built-in strategies."""
