"""The baseline for bench/receiver: an aiohttp handler that reads the body and answers 202,
without verifying, parsing or producing anything (on uvloop, like the receiver)."""

import sys

import uvloop
from aiohttp import web


async def accept(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"ok": True}, status=202)


app = web.Application(client_max_size=1024 * 1024 + 1)
app.router.add_post("/webhook", accept)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None, loop=uvloop.new_event_loop())
