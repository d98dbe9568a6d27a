"""``python -m hubspot_tx.sandbox``: the same as ``hubspot-tx sandbox``."""

from __future__ import annotations

import sys

from ..cli import main

if __name__ == "__main__":
    sys.exit(main(["sandbox", *sys.argv[1:]]))
