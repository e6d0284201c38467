"""The HTTP API (FastAPI): a thin shell over the collection's face.

``create_app(settings)`` builds the app (:mod:`search.api.app`); the server's client and helpers
live in its lifespan (:mod:`search.serving`). The server owns the store: an embedded store allows
one process, so index runs for it come here (``POST /index``, or ``anyshot index`` finding the
store held by this server) and run in a background thread while searches go on.

Layout: :mod:`~search.api.routers` (one module per resource: search, images, index runs, the
collection, concepts, snapshots, clip-back, health, the page and docs), handlers that only parse,
call the face and format; :mod:`~search.api.dependencies` (the server's parts as ``Depends``,
the API key's security schemes); :mod:`~search.api.errors` (anyshot's errors to status codes);
:mod:`~search.api.guards` (ASGI: API key, body limit, security headers, CORS).

Besides its own endpoints the API speaks LAION clip-retrieval's clip-back protocol
(``/indices-list``, ``/knn-service``, ``/metadata``), so that clip-front works against it.
"""

from search.api.app import create_app

__all__ = ["create_app"]
