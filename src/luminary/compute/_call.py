"""``python -m luminary.compute._call DIGEST``: run a Python call submitted as a job.

The SDK stores ``(function, args, kwargs)`` pickled with cloudpickle (so lambdas and functions
of ``__main__`` travel too) as a blob; this loads it, calls it, and
stores the outcome as the run's ``result.pkl`` artifact: ``("ok", value)`` or ``("error",
type name, message, traceback text)``. Unpickling runs code: only the submitter's own call,
from the store's content-addressed blob, is ever loaded, and only inside their job.
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

__all__ = ["RESULT", "dumps", "main"]

RESULT = "result.pkl"


def dumps(value: Any) -> bytes:
    import cloudpickle  # type: ignore[import-untyped]

    return bytes(cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m luminary.compute._call DIGEST", file=sys.stderr)
        return 2
    from luminary._current import get_store
    from luminary.tracking import ArtifactEntry

    store = get_store()
    call = pickle.loads(store.blobs.read_bytes(args[0]))
    function, fargs, fkwargs = call
    if os.environ.get("LUMINARY_GPU_MEMORY_FRACTION"):
        from luminary.compute._gpumem import apply_torch_limit

        apply_torch_limit()  # before the call allocates anything
    code = 0
    try:
        outcome: tuple[Any, ...] = ("ok", function(*fargs, **fkwargs))
    except BaseException as exc:  # noqa: BLE001 - the caller's .result() re-raises it
        traceback.print_exc()
        outcome = ("error", type(exc).__name__, str(exc), traceback.format_exc())
        code = 1
    try:
        payload = dumps(outcome)
    except Exception as exc:  # noqa: BLE001 - an unpicklable result is reported, not lost
        payload = dumps(
            ("error", type(exc).__name__, f"the result could not be pickled: {exc}", "")
        )
        code = 1
    run_id = os.environ["LUMINARY_RUN_ID"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, RESULT)
        path.write_bytes(payload)
        blob = store.blobs.put_file(path)
    store.add_artifacts(run_id, [ArtifactEntry(RESULT, blob.digest, blob.size)])
    return code


if __name__ == "__main__":
    sys.exit(main())
