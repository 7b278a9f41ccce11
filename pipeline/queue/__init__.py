"""Scale-out: the work as jobs on PostgreSQL, run by ``pipeline worker`` processes.

Without a ``queue:`` section nothing here is used: ``serve`` runs each scheduled action
itself (pipeline.actions). With ``queue: {engine: procrastinate}`` and a PostgreSQL state
store, a scheduled fire *enqueues* jobs instead, and workers on any number of machines
run them through the same stages (pipeline.assembly), the same delivery core and the
same ledger, which still guarantees each message and each post at most once.

- ``schema``: procrastinate's tables, installed in the state store's database.
- ``enqueue``: the jobs of an action, written in the transaction that records the fire
  (so a fire is enqueued once, whichever scheduler fires it).
- ``jobs``: what each job does, and how it reports into its run.
- ``worker``: ``pipeline worker``: procrastinate's worker, plus taking over the jobs of
  workers whose heartbeat stopped.
- ``pacing``: a message rate shared by every worker and connection.
- ``leader``: one scheduler leads; a standby takes over when it dies.
"""
