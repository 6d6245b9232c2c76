"""``python -m graphc``: the same command line as the ``graphc`` script."""

from graphc.tools.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
