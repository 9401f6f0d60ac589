"""``python -m gtn_search`` runs the command line."""

import sys

from gtn_search.cli import main

sys.exit(main())
