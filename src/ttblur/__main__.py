"""``python -m ttblur``: the same as the ``ttblur`` command."""

import sys

from ttblur.cli import main

sys.exit(main())
