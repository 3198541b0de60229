"""Storage infrastructure: it knows no run, model or dataset.

- :mod:`~luminary.storage.engine` — SQLAlchemy engines for SQLite (WAL, busy timeout, the
  durability ``LUMINARY_SYNC`` names) and PostgreSQL; read and write transactions; database
  errors translated into Luminary's (disk full, database unavailable); migrations applied on
  first use, once, under a lock.
- :mod:`~luminary.storage.schema` — the tables; :mod:`~luminary.storage.migrations` — Alembic.
- :mod:`~luminary.storage.blobs` — content-addressed (BLAKE3) blobs over fsspec (file, s3,
  root): the one verified write (copy to a temporary, hash, rename only if the digest matches).
- :mod:`~luminary.storage.filter` — the search filter language, compiled to SQL for both
  databases.
- :mod:`~luminary.storage.events` — the event log's writer.

The domains own their SQL on top of it (``tracking/_sql.py``, ``registry/_sql.py``,
``datasets/_sql.py``, ``auth/_sql.py``); :mod:`luminary.store` composes them.
"""
