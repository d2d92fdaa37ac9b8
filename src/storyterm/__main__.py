"""``python -m storyterm`` — the same as the ``storyterm`` command."""

import sys

from storyterm.cli import main

sys.exit(main())
