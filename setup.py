"""Thin setup.py: all metadata lives in pyproject.toml.

Only the package list is computed here, because pyproject.toml cannot express
"every graphc subpackage found on disk, plus graphc.kernels mapped from the
top-level kernels/ folder" (see the comment in pyproject.toml).
"""

from setuptools import find_packages, setup

packages = sorted(set(find_packages(include=["graphc", "graphc.*"])) | {"graphc.kernels"})

setup(packages=packages)
