"""The baseline: an aiohttp hello-world that answers every POST with a small JSON body.

``python -m device_emulator.bench_support.hello PORT``
"""

from __future__ import annotations

import sys

from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"hello": "world"})


def main() -> None:
    app = web.Application()
    app.router.add_post("/{tail:.*}", hello)
    app.router.add_get("/healthz", lambda request: hello(request))
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
