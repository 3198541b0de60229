"""Test support shipped with the package: the Store contract suite (``store_contract``) that
every Store implementation runs, and helpers to make PostgreSQL schemas for tests."""
