"""The ``hubspot-tx`` command line. Run ``hubspot-tx --help``."""

from ._main import main

__all__ = ["main"]
