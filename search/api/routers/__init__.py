"""The HTTP API's routers, one per resource; :func:`search.api.app.create_app` includes them."""
