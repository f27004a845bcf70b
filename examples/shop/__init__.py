"""A small shop on FastAPI + hasten: the example that ``make demo`` runs.

Two processes share one database (SQLite by default, PostgreSQL when ``DATABASE_URL`` is
set) through the same dependency, `db.get_session`::

    uvicorn examples.shop.app:app                          # the web app (db.py + app.py)
    python -m hasten worker examples.shop.jobs:queue       # the worker (db.py + jobs.py)

- `db`: the models, the ``resources()`` lifespan both processes run, `get_session`.
- `jobs`: the queue and its tasks: a welcome email, a report with progress, a charge that
  always fails and ends in the dead-letter queue.
- `app`: the routes that enqueue them, and hasten's jobs router under ``/jobs``.
"""
