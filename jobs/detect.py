"""``python -m jobs.detect SOURCE... --output OUT``: the ``detect`` command, for ``ray job submit``."""

import sys

from jobs.cli import detect_main

if __name__ == "__main__":
    sys.exit(detect_main(sys.argv[1:], prog="python -m jobs.detect"))
