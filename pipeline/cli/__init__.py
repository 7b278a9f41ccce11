"""The ``pipeline`` command line; see ``app`` for the group and error handling."""

from pipeline.cli import (  # noqa: F401  (registers them)
    bounces,
    content,
    db,
    deliveries,
    init,
    mail,
    schedule,
    status,
    subscribers,
    templates,
    worker,
)
from pipeline.cli.app import main

__all__ = ["main"]
