"""A module whose docstring names runtime.seed (allowed)."""
EXCLUDED = {"runtime.seed"}  # reported
