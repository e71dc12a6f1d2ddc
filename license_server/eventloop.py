"""The event loop the server and the benchmark client run on."""

from __future__ import annotations

import asyncio
import os

EVENT_LOOP_ENV = "DRM_EVENT_LOOP"  # "asyncio" forces the standard loop (e.g. to compare in a benchmark)


def install_fast_event_loop() -> str:
    """uvloop (libuv) when installed: the same asyncio API, a faster network path.

    Returns what is in use, for the startup log.
    """
    if os.environ.get(EVENT_LOOP_ENV, "").lower() == "asyncio":
        return "asyncio"
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return f"uvloop {uvloop.__version__}"
