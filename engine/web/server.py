"""Serving the web application: the secret it signs sessions with, and uvicorn on a background thread for
`dunning daemon --web-port` (the daemon's main thread keeps its signal handling).

`dunning serve` runs uvicorn in the foreground instead (engine.cli.serve).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.errors import ConfigError
from engine.web.settings import SECRET_ENV

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
logger = logging.getLogger("dunning.web")


def web_secret(host: str) -> str:
    """$DUNNING_WEB_SECRET; on a loopback host a generated one (with a warning) when it is unset."""
    secret = os.environ.get(SECRET_ENV)
    if secret:
        return secret
    if host in LOCAL_HOSTS:
        logger.warning(
            "$%s is not set; using a random secret for this run (sessions end when the server stops). "
            "Set it before serving anyone but yourself.",
            SECRET_ENV,
        )
        return secrets.token_hex(32)
    raise ConfigError(
        f"${SECRET_ENV} is not set; the server signs session cookies with it. Set it to a long random "
        f"value (e.g. `export {SECRET_ENV}=$(openssl rand -hex 32)`) and start again"
    )


def serve_forever(app: Any, host: str, port: int) -> None:
    """`dunning serve`: uvicorn in the foreground until SIGINT/SIGTERM."""
    import uvicorn

    uvicorn.run(
        app,
        host=host,
        port=port,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
        log_level="warning",
        access_log=False,
    )


#: What `dunning serve --workers N` hands its worker processes (they build the application themselves).
WORKER_ENV = "DUNNING_WEB_WORKER"


def serve_workers(config: Path | None, host: str, port: int, *, root_path: str, secret: str, workers: int) -> None:
    """`dunning serve --workers N`: N uvicorn worker processes on one port, each with its own application
    on the same configuration and session secret, sharing background jobs through a temporary folder."""
    import uvicorn

    with tempfile.TemporaryDirectory(prefix="dunning-web-jobs-") as jobs:
        os.environ[SECRET_ENV] = secret  # a secret made up for 127.0.0.1 must be every worker's
        os.environ[WORKER_ENV] = json.dumps(
            {"config": str(config.resolve()) if config else None, "root_path": root_path, "jobs": jobs}
        )
        uvicorn.run(
            "engine.web.server:worker_app",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            proxy_headers=True,
            forwarded_allow_ips="127.0.0.1",
            log_level="warning",
            access_log=False,
        )


def worker_app() -> Any:
    """The application of one worker process of `serve_workers` (uvicorn calls it in each)."""
    from engine.config import load_settings
    from engine.web.app import create_app

    spec = json.loads(os.environ[WORKER_ENV])
    return create_app(
        load_settings(spec["config"]),
        root_path=spec["root_path"],
        secret=os.environ[SECRET_ENV],
        jobs_folder=Path(spec["jobs"]),
    )


def serve_in_background(settings: Any, host: str, port: int, clock: Any = None) -> Callable[[], None]:
    """Start the web application on `host:port` on background threads (`dunning daemon --web-port`), on
    `clock`; returns the function that stops it."""
    from engine.web.app import create_app

    server = BackgroundWebServer(create_app(settings, secret=web_secret(host), clock=clock), host, port)
    server.start()
    bound_host, bound_port = server.address
    logger.info("web workspace on http://%s:%d/ (API: /api/v1)", bound_host, bound_port, extra={"event": "web_started"})
    return server.stop


class BackgroundWebServer:
    """uvicorn serving `app` on a daemon thread; `start` returns once it listens, `stop` once it has ended."""

    def __init__(self, app: Any, host: str, port: int, *, root_path: str = ""):
        import uvicorn

        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            root_path=root_path,
            log_level="warning",
            access_log=False,
            proxy_headers=True,
            forwarded_allow_ips="127.0.0.1",
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self.host, self.port = host, port
        self._thread = threading.Thread(target=self.server.run, name="dunning-web", daemon=True)

    def start(self, timeout: float = 30) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise ConfigError(
                    f"the web server could not listen on {self.host}:{self.port} (in use?); pick another --web-port"
                )
            if time.monotonic() > deadline:
                raise ConfigError(f"the web server did not start on {self.host}:{self.port} within {timeout:g} s")
            time.sleep(0.05)

    @property
    def address(self) -> tuple[str, int]:
        servers = getattr(self.server, "servers", None) or []
        for server in servers:
            for sock in server.sockets:
                name = sock.getsockname()
                return str(name[0]), int(name[1])
        return self.host, self.port

    def stop(self, timeout: float = 10) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)
