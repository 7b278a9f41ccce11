"""The ``pipeline`` command line; see ``app`` for the group and error handling."""

from pipeline.cli import content, deliveries, mail, schedule  # noqa: F401  (registers them)
from pipeline.cli.app import main

__all__ = ["main"]
