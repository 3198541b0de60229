"""Bare echo servers: the front-end floors that an inference server is compared against.

    python benchmarks/_echo.py grpc-sync|grpc-aio|asgi --port P [--threads N]

No model and no protocol: each server answers a request with its own body, unchanged.

* ``grpc-sync``: ``grpc.server`` with a ``ThreadPoolExecutor`` (``--threads`` workers);
* ``grpc-aio``: ``grpc.aio.server`` on the default asyncio loop;
* ``asgi``: a raw ASGI app (no framework) on uvicorn + httptools + uvloop, HTTP/1.1.

The gRPC servers register a generic handler for ``/inference.GRPCInferenceService/ModelInfer``
without (de)serialisers, so the handler sees and returns raw bytes; a KServe v2 client's
``ModelInferRequest`` comes back as the response message. All bind 127.0.0.1 only and exit
with status 0 on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent import futures
from typing import Any

import grpc

SERVICE = "inference.GRPCInferenceService"
METHOD = "ModelInfer"
HOST = "127.0.0.1"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _echo_sync(request: bytes, context: grpc.ServicerContext) -> bytes:
    return request


async def _echo_async(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


def _bind(server: grpc.Server | grpc.aio.Server, port: int) -> None:
    bound = server.add_insecure_port(f"{HOST}:{port}")
    if bound != port:
        raise SystemExit(f"could not bind {HOST}:{port}")


def serve_grpc_sync(port: int, threads: int) -> None:
    """Serve the echo method on a thread pool of ``threads`` workers until SIGTERM/SIGINT."""
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {METHOD: grpc.unary_unary_rpc_method_handler(_echo_sync)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads))
    server.add_generic_rpc_handlers((handler,))
    _bind(server, port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    print(f"grpc-sync echo on {HOST}:{port} ({threads} threads)", flush=True)
    stop.wait()
    server.stop(grace=1.0).wait()


async def _serve_grpc_aio(port: int) -> None:
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {METHOD: grpc.unary_unary_rpc_method_handler(_echo_async)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    _bind(server, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    print(f"grpc-aio echo on {HOST}:{port}", flush=True)
    await stop.wait()
    await server.stop(grace=1.0)


def serve_grpc_aio(port: int) -> None:
    """Serve the echo method on ``grpc.aio`` (one event loop) until SIGTERM/SIGINT."""
    asyncio.run(_serve_grpc_aio(port))


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A raw ASGI app: any HTTP request is answered 200 with its body echoed."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    content_type = b"application/octet-stream"
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def serve_asgi(port: int) -> None:
    """Serve :func:`echo_app` on uvicorn + httptools + uvloop until SIGTERM/SIGINT.

    uvicorn shuts down gracefully on those signals, then re-raises the signal against the
    handler it found at start; that handler is a no-op here, so the process exits with 0.
    """
    import uvicorn

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    print(f"asgi echo on {HOST}:{port}", flush=True)
    uvicorn.run(
        echo_app,
        host=HOST,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["grpc-sync", "grpc-aio", "asgi"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=32, help="grpc-sync pool size")
    args = parser.parse_args(argv)
    if args.kind == "grpc-sync":
        serve_grpc_sync(args.port, args.threads)
    elif args.kind == "grpc-aio":
        serve_grpc_aio(args.port)
    else:
        serve_asgi(args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
