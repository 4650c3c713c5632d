"""``python -m pmv2nb.cli`` (what ``accelerate launch -m pmv2nb.cli`` runs)."""

import sys

from . import main

sys.exit(main())
