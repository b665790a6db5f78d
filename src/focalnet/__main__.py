"""``python -m focalnet ...`` is the ``focalnet`` command."""

import sys

from focalnet.cli import main

sys.exit(main())
