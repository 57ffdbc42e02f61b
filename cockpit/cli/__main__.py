"""``python -m cockpit.cli``: the ``cockpit`` command (cockpit.cli.main)."""

import sys

from cockpit.cli import main

sys.exit(main())
