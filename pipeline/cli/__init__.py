"""The ``pipeline`` command line; see ``app`` for the group and error handling."""

from pipeline.cli import content, mail, schedule  # noqa: F401  (registers the commands)
from pipeline.cli.app import main

__all__ = ["main"]
