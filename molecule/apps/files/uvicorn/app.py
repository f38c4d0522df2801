# onebox.deploy app for uvicorn, deployed by the Molecule scenario `apps` and
# shown in docs/recipes.md: a plain ASGI app (standard library only) under
# Debian's uvicorn 0.17.6 (package `uvicorn`). The release directory runs it as
#   /usr/bin/uvicorn --fd 3 app:app
# uvicorn 0.17.6 has no --timeout-graceful-shutdown, and on SIGTERM it closes
# idle keep-alive connections at once, racing with a client's next request.
# So this app replaces uvicorn's SIGTERM handler with a drain: /readyz 503,
# stop accepting, "Connection: close" on every response, and only after an
# idle grace hand over to uvicorn's own shutdown.
import asyncio
import gc
import json
import os
import signal

import uvicorn.server

IDLE_GRACE = 0.5  # seconds an idle keep-alive connection may still send a request
state = {"ready": False, "draining": False}
BODY = json.dumps({"site": os.environ.get("ONEBOX_SITE"), "version": os.environ.get("ONEBOX_VERSION"),
                   "pid": os.getpid(), "server": "uvicorn"}).encode()
for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
    os.environ.pop(name, None)  # uvicorn was told --fd 3


def health(path):
    """/livez: 200 while alive, warm-up and drain included; /readyz: 200 only while serving."""
    if path == "/livez":
        return 200
    if path == "/readyz":
        return 200 if state["ready"] and not state["draining"] else 503
    return None


async def health_port(reader, writer):
    request = await reader.readline()
    while (await reader.readline()).strip():
        pass  # the request's headers
    code = health((request.split() + [b"", b""])[1].decode()) or 404
    text = b"ok\n" if code == 200 else b"not ready\n"
    writer.write(b"HTTP/1.1 %d -\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                 b"Connection: close\r\n\r\n%s" % (code, len(text), text))
    await writer.drain()
    writer.close()


def drain():
    if state["draining"]:
        return
    state["draining"] = True
    if not state["ready"]:
        os._exit(0)  # stopped while warming up: nothing accepted
    # The uvicorn.Server running this app (its CLI gives the app no reference).
    server = next(o for o in gc.get_objects() if isinstance(o, uvicorn.server.Server))
    for listener in getattr(server, "servers", []):
        listener.close()  # stop accepting; closes only uvicorn's copy of fd 3
    asyncio.ensure_future(hand_over(server))


async def hand_over(server):
    # Idle grace: a request already on its way over a keep-alive connection
    # still gets its answer. Busy connections close after their next response.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + IDLE_GRACE
    while server.server_state.connections and loop.time() < deadline:
        await asyncio.sleep(0.01)
    # uvicorn's shutdown: closes the connections that stayed idle, waits for the rest.
    server.handle_exit(signal.SIGTERM, None)


async def startup():
    # The health port first, so that the deploy can watch the warm-up
    # (host:port, [v6]:port or a bare port). Without a port of its own, the
    # public socket answers /livez and /readyz.
    addr = os.environ.get("ONEBOX_HEALTH_LISTEN", "")
    if addr and addr != os.environ.get("ONEBOX_LISTEN"):
        host, _, port = addr.rpartition(":")
        state["health"] = await asyncio.start_server(health_port, host.strip("[]") or None, int(port))
    # uvicorn installed its own handlers before the lifespan startup.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, drain)
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, drain)
    # Warm-up: uvicorn serves fd 3 only once the startup is complete; meanwhile
    # connections wait in the socket's backlog (strategy restart) or go to the
    # old instance (overlap).
    await asyncio.sleep(float(os.environ.get("APP_WARMUP", "0.8")))
    state["ready"] = True


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    code = health(scope["path"])
    body = BODY if code is None else (b"ok\n" if code == 200 else b"not ready\n")
    headers = [(b"content-type", b"application/json" if code is None else b"text/plain"),
               (b"content-length", b"%d" % len(body))]
    if state["draining"]:
        headers.append((b"connection", b"close"))  # uvicorn closes the connection after this response
    await send({"type": "http.response.start", "status": code or 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
