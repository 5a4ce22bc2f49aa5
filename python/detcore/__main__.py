"""``python -m detcore ...`` is the ``detcore`` command."""

import sys

from .cli import main

sys.exit(main())
