"""`dunning serve`: the web workspace and REST API on uvicorn.

    DUNNING_WEB_SECRET=$(openssl rand -hex 32) dunning serve --host 0.0.0.0 --port 8080 [--root-path /dunning]
        [--workers 2]    # server processes on the port: one per CPU core in production

Without $DUNNING_WEB_SECRET the server refuses to start, except on 127.0.0.1 (a development machine), where
it makes up a secret and warns: sessions then end when the server stops.
"""

from __future__ import annotations

from typing import Annotated

import typer

from engine.cli.shared import app, err, guarded, state
from engine.errors import ConfigError


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.", min=1, max=65535)] = 8080,
    root_path: Annotated[
        str, typer.Option("--root-path", help="The path prefix a reverse proxy serves us under, e.g. /dunning.")
    ] = "",
    workers: Annotated[
        int,
        typer.Option("--workers", help="Server processes on the port (one per CPU core serves most).", min=1, max=64),
    ] = 1,
) -> None:
    """Serve the web workspace and the REST API (/api/v1, OpenAPI at /api/v1/openapi.json)."""

    def action() -> None:
        from engine.web.app import create_app
        from engine.web.server import serve_forever, serve_workers, web_secret

        if root_path and (not root_path.startswith("/") or any(c in root_path for c in " \r\n?#")):
            raise ConfigError(f"--root-path {root_path!r} must be a path such as /dunning")
        secret = web_secret(host)
        application = create_app(state.settings(), root_path=root_path, secret=secret)  # checks it all first
        err.print(f"dunning web workspace on http://{host}:{port}{root_path}/ (API: {root_path}/api/v1)", markup=False)
        if workers == 1:
            serve_forever(application, host, port)
        else:
            application.state.dunning.repo.dispose()  # each worker opens its own
            serve_workers(state.config, host, port, root_path=root_path, secret=secret, workers=workers)

    guarded(action)
