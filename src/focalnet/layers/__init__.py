"""Small building blocks shared by every model family."""

from .drop import DropPath
from .mlp import Mlp

__all__ = ["DropPath", "Mlp"]
