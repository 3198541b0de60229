"""Test support shipped with the package: the Store contract suite (``store_contract``) that
every Store implementation runs, helpers to make PostgreSQL schemas for tests, and a local
multi-node Ray cluster (``ray_cluster``) for the Ray executor's tests and benchmark."""
