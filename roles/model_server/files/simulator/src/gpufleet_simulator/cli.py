"""`python -m gpufleet_simulator` or `gpufleet-simulator`: flags mirror the GPUFLEET_SIM_* variables, and win."""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__
from .config import ConfigError, SimConfig, add_arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpufleet-simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    parser.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    parser.add_argument("--no-access-log", action="store_true", help="skip uvicorn's per-request log line")
    parser.add_argument("--timeout-graceful-shutdown", type=int, metavar="SECONDS",
                        help="on SIGTERM, how long open requests may run on (uvicorn's flag; default: unbounded)")
    parser.add_argument("--timeout-keep-alive", type=int, default=5, metavar="SECONDS",
                        help="close an idle keep-alive connection after this long (uvicorn's flag; default 5)")
    # vLLM's own server runs on uvloop and httptools (uvicorn[standard], through fastapi[standard]); h11 and
    # asyncio stay selectable, for the benchmark that compares the two stacks.
    parser.add_argument("--http", default="httptools", choices=("httptools", "h11"),
                        help="HTTP/1.1 parser (default httptools, as vLLM)")
    parser.add_argument("--loop", default="uvloop", choices=("uvloop", "asyncio"),
                        help="event loop (default uvloop, as vLLM)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = {knob.name: getattr(args, knob.name) for knob in SimConfig.knobs()}
    from .app import create_app

    try:
        app = create_app(SimConfig.from_env(os.environ, overrides))
    except ConfigError as exc:
        parser.error(f"invalid configuration: {exc}")

    import uvicorn

    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                access_log=not args.no_access_log, timeout_graceful_shutdown=args.timeout_graceful_shutdown,
                timeout_keep_alive=args.timeout_keep_alive, http=args.http, loop=args.loop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
