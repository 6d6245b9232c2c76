"""Hand-written C and CUDA kernel templates, installed as ``graphc.kernels``.

This package holds data files only (``*.c``, ``*.cu``, ``*.h``, ``*.md``); read them with
:func:`graphc.env.kernels_dir`. This file exists so that editable installs can import the
package (setuptools' editable finder needs a regular package for a remapped folder).
"""
