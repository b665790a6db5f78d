"""The package version: the one place it is written (pyproject.toml reads it, ``focalnet.__version__`` imports it)."""

__version__ = "0.1.0"
