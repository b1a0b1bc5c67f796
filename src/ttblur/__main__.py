"""``python -m ttblur``: the same as the ``ttblur`` command.

``python -m`` puts the current folder first on ``sys.path``, so a file there named like a
module ttblur imports (``safetensors.py``, ``torch.py``, ...) would shadow it. That entry is
removed before anything else is imported. (Modules imported by Python itself before this
point cannot be protected here: ``python -P -m ttblur`` or the ``ttblur`` command avoid the
entry altogether.)
"""

import os
import sys

if not getattr(sys.flags, "safe_path", False) and sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from ttblur.cli import main  # after the sys.path fix above

sys.exit(main())
