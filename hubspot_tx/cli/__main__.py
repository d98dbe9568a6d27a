"""``python -m hubspot_tx.cli``: the same as ``hubspot-tx``."""

import sys

from ._main import main

sys.exit(main())
