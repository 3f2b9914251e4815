"""The web workspace and REST API (issue 12).

`engine.web.app.create_app` builds the FastAPI application; `engine.web.settings` holds the `web:`
configuration block (kept free of web libraries so `engine.config` can import it).
"""
