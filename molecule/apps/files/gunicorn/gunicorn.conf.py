# gunicorn settings of the onebox.deploy app for gunicorn (app.py). No bind:
# when systemd passes a socket (LISTEN_FDS and LISTEN_PID), gunicorn serves it.
# The drain: on SIGTERM (systemd sends it to the master and the workers at
# once, KillMode=control-group) the master closes its sockets and each worker
# finishes the request it has, then exits. Sync workers close the connection
# after every response, so there are no idle keep-alive connections to drain.
worker_class = "sync"
preload_app = True    # import app.py in the master: health port and warm-up before the workers fork
graceful_timeout = 8  # a worker's time for its request in flight; below the site's drain_timeout (10 s)


def when_ready(server):
    """In the master once it has the socket: ready, and /readyz 503 as soon as it begins to stop."""
    import app  # preloaded already

    app.READY.set()
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
