"""graphc's command-line tools: the ``graphc`` command and what its subcommands run.

* :mod:`graphc.tools.cli`: the ``graphc`` command (also ``python -m graphc``) and its
  registry of subcommands; ``graphc info`` lives there;
* :mod:`graphc.tools.demo`: ``graphc demo``, train the digits CNN, export its graph,
  benchmark it against NumPy;
* :mod:`graphc.tools.bench`: ``graphc bench``, graphc's C backend against NumPy
  (also ``python -m graphc.tools.bench`` and ``benchmarks/bench.py``).

Tools use graphc's public API only (``import graphc as gc``, :mod:`graphc.env`, the ops'
NumPy references), never the code generator's internals.

Example::

    $ graphc info
    $ graphc demo --out /tmp/demo
    $ graphc bench --quick
    >>> from graphc.tools.cli import main
    >>> main(["--version"])                   # doctest: +SKIP
    graphc 0.1.0
    0
"""
