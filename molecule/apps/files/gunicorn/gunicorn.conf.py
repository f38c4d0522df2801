# gunicorn settings of the onebox.deploy app for gunicorn (app.py). No bind:
# when systemd passes a socket (LISTEN_FDS and LISTEN_PID), gunicorn serves it.
# The drain: on SIGTERM (systemd sends it to the master only, KillMode=mixed)
# the master closes its sockets and sends SIGTERM to each worker, which
# finishes the request it has, then exits. Sync workers close the connection
# after every response, so there are no idle keep-alive connections to drain.
worker_class = "sync"
preload_app = True    # import app.py in the master: health port and warm-up before the workers fork
graceful_timeout = 8  # a worker's time for its request in flight; below the site's drain_timeout (10 s)


def when_ready(server):
    """In the master once it has the socket, before the workers fork: /readyz 200 once they
    serve (app.ready()), and 503 as soon as the master begins to stop."""
    import app  # preloaded already

    app.ARBITER.append(server)
    stop = server.handle_term

    def handle_term():
        app.DRAINING.set()
        stop()

    server.handle_term = handle_term


def post_fork(server, worker):
    """A worker leaves the health port to the master."""
    import app

    if app.health_port:
        app.health_port.socket.close()


def post_worker_init(worker):
    """In a worker with its signal handlers set and the app loaded: it serves."""
    import struct

    import app

    struct.pack_into("i", app.SERVING, 4 * (worker.age % 256), worker.pid)
