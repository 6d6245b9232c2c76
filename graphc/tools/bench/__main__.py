"""``python -m graphc.tools.bench``: the same as ``graphc bench`` (used by ``--threads``)."""

import sys

from .command import main

if __name__ == "__main__":
    sys.exit(main())
