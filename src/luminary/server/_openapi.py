"""The served OpenAPI document, for ``docs/openapi.json``.

python -m luminary.server._openapi > docs/openapi.json
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any


def document() -> dict[str, Any]:
    """The OpenAPI document of the team-mode server (built on a throwaway empty store)."""
    from luminary.server import create_app
    from luminary.store import SqlStore

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        store = SqlStore(f"sqlite:///{home / 'luminary.db'}", str(home / "blobs"))
        try:
            return dict(create_app(store, tmp_dir=home / "tmp", auth=True).openapi())
        finally:
            store.close()


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
