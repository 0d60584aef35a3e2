"""The baseline for bench/console: an aiohttp handler that answers a fixed page of the same size as the
console's hosts page, without reading any state (on uvloop, like the console)."""

import sys

import uvloop
from aiohttp import web

PAGE = "<html><body>" + "<tr><td>x</td></tr>" * int(sys.argv[2]) + "</body></html>"


async def page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html")


app = web.Application()
app.router.add_get("/{tail:.*}", page)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None, loop=uvloop.new_event_loop())
