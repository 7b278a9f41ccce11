"""Settings of the job queue: with a ``queue:`` section, ``serve`` enqueues and workers run."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.settings.base import Strict


class QueueSettings(Strict):
    engine: Literal["procrastinate"] = Field(
        description="The job queue: procrastinate, whose jobs and locks live in the "
        "PostgreSQL state store (`pipeline worker` runs them)."
    )
    batch_size: int = Field(
        500,
        ge=1,
        le=100_000,
        description="Recipients per digest job: an edition is fanned out into batches "
        "of this many, each a job any worker may take.",
    )
    stalled_after: float = Field(
        30.0,
        ge=3,
        le=3600,
        description="Seconds without a worker's heartbeat after which its running jobs "
        "are given to another worker.",
    )
