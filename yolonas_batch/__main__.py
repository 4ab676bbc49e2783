"""``python -m yolonas_batch``: the ``yolonas-batch`` command without its console script."""

import sys

from yolonas_batch.cli import main

if __name__ == "__main__":
    sys.exit(main())
