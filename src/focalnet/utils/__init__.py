"""Small utilities that are not part of a model: FLOP counting, timing (import the submodules directly)."""
