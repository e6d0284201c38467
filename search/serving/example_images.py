"""Example images sent by clients of the server, decoded within bounds.

An upload of a few kilobytes may declare 9999×9999 pixels and cost hundreds of megabytes once
decoded. So the server reads an example image's header first (no pixels decoded), lets JPEGs
shrink in the decoder to the model's input size, and refuses the image when the pixels it would
decode to exceed what is left of the request's budget (``api.max_query_pixels``). At most
``api.max_concurrent_decodes`` images decode at once; more wait a few seconds, then get 429.

An example given by URL is downloaded only when ``api.fetch_image_urls`` allows it, through
:func:`indexer.access.fetch_url` under the server's policy (no private addresses unless
allowed, a total deadline, a size cap), at most ``api.max_concurrent_downloads`` at once; the
engine only ever gets the bytes, never the URL. This server's own ``/images/{id}`` and
``/thumbs/{id}`` URLs (clip-front sends a result's URL back) become the indexed image itself.

Each request reads its examples through :meth:`ExampleImages.reader`, the
:class:`~search.request_parts.ExampleReader` the server hands to its client.
"""

from __future__ import annotations

import io
import re
import warnings

from PIL import Image

from indexer.access import AccessPolicy, fetch_url
from indexer.config import ApiSettings
from indexer.decode import decode_image
from indexer.errors import ImageDecodeError, QueryError
from indexer.schema import is_point_id
from search.serving.work_limits import WorkLimiter

DECODE_WAIT_SECONDS = 5.0
"""How long an example image waits for a decode slot before the request gets 429."""

OWN_IMAGE_URL = re.compile(r"/(?:images|thumbs)/(\d{1,20})(?:[?#].*)?$")
"""A URL of this API's own image or thumbnail of an indexed id."""


class PixelBudget:
    """The pixels the example images of one request may decode to, together.

    Args:
        limit: Pixels in all.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def spend(self, pixels: int, label: str) -> None:
        """Take ``pixels`` from the budget.

        Raises:
            QueryError: Not that many are left.
        """
        if pixels > self.left:
            whole = "the" if self.left == self.limit else "what is left of the"
            raise QueryError(
                f"{label} is too large: it decodes to {pixels} pixels, over {whole} request's "
                f"budget of {self.limit} (api.max_query_pixels)"
            )
        self.left -= pixels


def decoded_pixels(data: bytes, target_size: int | None, label: str) -> tuple[int, int]:
    """(pixels of the full image, pixels it decodes to), from the header alone.

    JPEGs decode reduced (DCT scaling) to no less than ``target_size`` on each side, exactly as
    :func:`indexer.decode.decode_image` does.

    Raises:
        QueryError: Not an image, or one Pillow refuses outright as a decompression bomb.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if target_size:
                    image.draft("RGB", (target_size, target_size))
                reduced_width, reduced_height = image.size
        except Image.DecompressionBombError as exc:
            raise QueryError(f"{label} is too large: {exc}") from exc
        except Exception as exc:  # untrusted bytes: any plugin error means "not an image"
            raise QueryError(f"{label} is not an image Pillow can read") from exc
    return width * height, reduced_width * reduced_height


class ExampleImages:
    """Turns a client's example images (bytes or URLs) into decoded images, within limits.

    Args:
        api: The server's settings (pixel budget, URL fetching, deadline, allowed hosts).
        downloads: The server's limit on concurrent downloads.
        decodes: The server's limit on concurrent decodes.
    """

    def __init__(self, api: ApiSettings, *, downloads: WorkLimiter, decodes: WorkLimiter) -> None:
        self.api = api
        self.downloads = downloads
        self.decodes = decodes
        self.policy = AccessPolicy.for_server(api)

    def budget(self) -> PixelBudget:
        """A fresh pixel budget for one request."""
        return PixelBudget(self.api.max_query_pixels)

    def reader(self) -> RequestExamples:
        """The reader of one request's example images, with a fresh pixel budget."""
        return RequestExamples(self, self.budget())

    def decode(
        self,
        data: bytes,
        *,
        target_size: int | None,
        budget: PixelBudget,
        label: str = "the example image",
    ) -> Image.Image:
        """Decode an example image's bytes to RGB, refusing it before decoding when too large.

        Raises:
            QueryError: Not an image, corrupt, or over the pixel budget.
            BusyError: Too many decodes running, for too long.
        """
        full, reduced = decoded_pixels(data, target_size, label)
        budget.spend(reduced, label)
        with self.decodes.slot():
            try:
                decoded = decode_image(
                    data, uri=label, target_size=target_size, max_pixels=max(full, 1)
                )
            except ImageDecodeError as exc:
                raise QueryError(f"cannot use {label}: {exc.reason}") from exc
        return decoded.image

    def download(self, url: str) -> bytes:
        """Download an example image a client named by URL, under the server's policy.

        Raises:
            QueryError: URL fetching is off, or the policy refused the URL, or the download
                failed, took too long or was too large.
            BusyError: Too many downloads running.
        """
        if not self.api.fetch_image_urls:
            raise QueryError(
                "this server does not fetch image URLs (api.fetch_image_urls); upload the image"
            )
        with self.downloads.slot():
            try:
                return fetch_url(url, self.policy)
            except ImageDecodeError as exc:
                raise QueryError(f"cannot use the example image {url}: {exc.reason}") from exc


class RequestExamples:
    """The example images of one request, read under the server's limits (a
    :class:`~search.request_parts.ExampleReader`).

    Args:
        examples: The server's example images (policy, limits).
        budget: What the request's images may decode to, together.
    """

    def __init__(self, examples: ExampleImages, budget: PixelBudget) -> None:
        self.examples = examples
        self.budget = budget

    def image(self, data: bytes, label: str, target_size: int | None) -> Image.Image:
        """Decode an example image within the request's budget (:meth:`ExampleImages.decode`)."""
        return self.examples.decode(data, target_size=target_size, budget=self.budget, label=label)

    def url(self, url: str) -> bytes | int:
        """This API's own image URLs become their id; other http(s) URLs are downloaded only
        as :meth:`ExampleImages.download` allows; nothing else is read (a path here would let
        a client read the server's files).

        Raises:
            QueryError: A URL that may not be used, or whose download failed.
            BusyError: Too many downloads running.
        """
        own = OWN_IMAGE_URL.search(url)
        if own is not None and is_point_id(int(own.group(1))):
            return int(own.group(1))
        if not url.lower().startswith(("http://", "https://")):
            raise QueryError("image_url must be an http(s) URL")
        return self.examples.download(url)
