"""``python -m luminary.compute.runner JOB --attempt N [--rank R]``: one rank of a job attempt.

What Ray and Slurm start on the node they chose. It opens the store the environment names
(``LUMINARY_URI``/``LUMINARY_TOKEN`` for a team server, else ``LUMINARY_HOME``), runs the
rank under a :class:`~luminary.compute._supervise.Supervisor` and exits with the command's exit
code (0 when the attempt was stale or cancelled before it started: there was nothing to run).
The rank is ``--rank``, else ``LUMINARY_RANK``, else Slurm's ``SLURM_PROCID``, else 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from luminary.errors import InvalidStateError, LuminaryError

__all__ = ["main"]


def _rank(given: int | None) -> int:
    if given is not None:
        return given
    for name in ("LUMINARY_RANK", "SLURM_PROCID"):
        value = os.environ.get(name)
        if value and value.isdigit():
            return int(value)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m luminary.compute.runner")
    parser.add_argument("job")
    parser.add_argument("--attempt", type=int, required=True)
    parser.add_argument("--rank", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="luminary runner: %(message)s")
    from luminary._current import get_store
    from luminary.compute._settings import job_heartbeat_s
    from luminary.compute._supervise import Supervisor

    store = get_store()
    try:
        job = store.get_job(args.job)
        if job.attempt != args.attempt:
            print(
                f"luminary runner: job {job.id} is at attempt {job.attempt}, "
                f"not {args.attempt}; nothing to run",
                file=sys.stderr,
            )
            return 0
        report = Supervisor(
            store,
            job,
            _rank(args.rank),
            heartbeat_s=job_heartbeat_s(),
        ).run()
    except InvalidStateError as exc:
        print(f"luminary runner: {exc}", file=sys.stderr)
        return 0
    except LuminaryError as exc:
        print(f"luminary runner: {exc}", file=sys.stderr)
        return 2
    code = report.exit_code if report.exit_code is not None else 1
    return code if 0 <= code < 256 else 128 + (-code if code < 0 else 1)


if __name__ == "__main__":
    sys.exit(main())
