"""``python -m luminary.compute.agent POOL [--idle-exit S]``: serve one pool from this process
(what ``luminary pools serve`` and the embedded store's on-demand start run)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m luminary.compute.agent")
    parser.add_argument("pool")
    parser.add_argument("--idle-exit", type=float, default=None)
    parser.add_argument("--heartbeat", type=float, default=None)
    parser.add_argument("--detach", action="store_true", help="Fork into the background.")
    args = parser.parse_args(argv)
    if args.detach and os.fork():  # the caller waits for this parent, not for the agent
        os._exit(0)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s luminary agent: %(message)s")
    from luminary._current import get_store
    from luminary.compute._agent import AgentLoop

    loop = AgentLoop(get_store(), args.pool, heartbeat_s=args.heartbeat, idle_exit_s=args.idle_exit)

    def _stop(signum: int, frame: object) -> None:
        del signum, frame
        loop.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
