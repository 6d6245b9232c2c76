"""The C backend: each fetch set becomes one shared library and one native call per step."""

from .executable import CBackend, CExecutable

__all__ = ["CBackend", "CExecutable"]
