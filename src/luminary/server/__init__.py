"""The Luminary server: the Store over REST (FastAPI), for team mode.

- :func:`create_app` (``_app.py``) — the app factory, health checks (``/healthz``, ``/readyz``).
- ``_errors.py`` — the one table from Luminary errors to HTTP status and ``{code, message,
  details}`` bodies; the REST client (:mod:`luminary.store._rest`) maps them back.
- ``_auth.py`` — access control: bearer tokens (401 saying why), roles per project as route
  dependencies (403 for a role too low, 404 without a role), filtered listings.
- ``_runs.py``, ``_registry.py``, ``_datasets.py``, ``_blobs.py`` — routes, one module per noun,
  under ``/api/v1/``.

Run it with ``luminary server`` (binds 127.0.0.1 unless told otherwise; team mode with tokens
unless ``--no-auth``, which only binds a loopback host). Needs the extra:
``pip install 'luminary[server]'``.
"""

from __future__ import annotations

from luminary.server._app import API, create_app

__all__ = ["API", "create_app"]
