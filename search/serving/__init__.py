"""What a server holds beside its collection, free of any web framework.

- :mod:`~search.serving.state`: the server's client and helpers, opened together;
- :mod:`~search.serving.index_jobs`: index runs in a background thread;
- :mod:`~search.serving.served_images`: which indexed images may be handed out, read safely;
- :mod:`~search.serving.thumbnails`: cached JPEG thumbnails of those;
- :mod:`~search.serving.example_images`: example images of requests, decoded within bounds;
- :mod:`~search.serving.work_limits`: so many downloads or decodes at once, the rest refused;
- :mod:`~search.serving.server_paths`: the server paths a client may name.

The HTTP API (:mod:`search.api`) is the shell over these.
"""
