"""What a photo's own metadata says: when and where it was taken, the camera, the owner's words.

Read once per image from the file the decoding worker already holds (EXIF, XMP, IPTC), into
payload keys (:data:`indexer.schema.METADATA_KEYS`). Every field is checked on its own: a value
that is missing, of the wrong type or impossible (a 13th month, a NaN latitude, a zero
denominator) is left out, and nothing here ever fails an image. Places (city, region, country)
are added later, in the indexing process, from the coordinates (:mod:`indexer.places`).

- ``taken``: DateTimeOriginal with OffsetTimeOriginal when present, else DateTimeDigitized
  (EXIF's CreateDate) with its offset, else XMP's ``exif:DateTimeOriginal``/``xmp:CreateDate``/
  ``photoshop:DateCreated``; never the file's mtime. Written as ISO 8601 (with the offset when
  the file has one); ``taken_ts`` is that wall-clock time counted as if it were UTC, so that
  ``taken>=2023-06-01`` means the date on the photographer's calendar wherever it was shot.
- ``lat``/``lon``/``alt`` from the GPS block, with ``location`` ``{"lon", "lat"}`` for Qdrant's
  geo filters; 0°,0° (what broken devices write for "no fix") is dropped.
- ``camera``: make and model (the make once); ``lens``; ``keywords`` (XMP ``dc:subject`` and
  IPTC keywords), ``title``, ``description``; lower-cased twins for case-insensitive filters.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from PIL import ExifTags, Image, IptcImagePlugin

logger = logging.getLogger(__name__)

METADATA_VERSION = 1
"""Written as ``meta_version`` on every payload whose file was read for metadata (with or
without finding any), so that re-indexing reads each stored image's metadata once."""

MAX_XMP_BYTES = 1 << 20
"""XMP packets larger than this are not parsed (a JPEG's APP1 holds at most 64 KiB; a bigger
packet is padding or an attack)."""
MAX_TEXT_CHARS = 2_000
"""Longest title or description kept."""
MAX_KEYWORDS = 100
MAX_KEYWORD_CHARS = 100
MAX_CAMERA_CHARS = 200
EARLIEST_YEAR = 1826
"""The first photograph: an earlier date taken is a broken clock."""
LATEST_AHEAD = timedelta(days=2)
"""How far past now a date taken may lie (time zones, a slightly fast camera clock)."""

_EXIF_DATE = re.compile(
    r"^\s*(\d{4})[:-](\d{2})[:-](\d{2})[ T](\d{2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?\s*"
    r"(Z|[+-]\d{2}:?\d{2})?\s*$"
)
_XMP_DATE = re.compile(
    r"^\s*(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?)?)?)?\s*"
    r"(Z|[+-]\d{2}:?\d{2})?\s*$"
)
_OFFSET = re.compile(r"^\s*(Z|[+-]\d{2}:?\d{2})\s*$")

_NS = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "exif": "http://ns.adobe.com/exif/1.0/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
}
_IPTC_KEYWORDS, _IPTC_TITLE, _IPTC_CAPTION = (2, 25), (2, 5), (2, 120)


def read_photo_metadata(image: Image.Image, *, uri: str = "<bytes>") -> dict[str, Any]:
    """The metadata payload keys of an opened image (pixels need not be loaded).

    Args:
        image: The image as Pillow opened it (its EXIF, XMP and IPTC are read from there).
        uri: Where it came from, for the debug log of fields that were dropped.

    Returns:
        The keys found (``taken``, ``taken_ts``, ``lat``, ``lon``, ``alt``, ``location``,
        ``camera``, ``camera_lc``, ``lens``, ``keywords``, ``keywords_lc``, ``title``,
        ``description``), plus ``meta_version``. Never raises for what a file holds.
    """
    found: dict[str, Any] = {}
    for reader in (_read_exif, _read_xmp, _read_iptc):
        try:
            with warnings.catch_warnings():  # Pillow warns of corrupt EXIF: it is dropped here
                warnings.simplefilter("ignore")
                read = reader(image)
            for key, value in read.items():
                if key == "keywords":
                    found["keywords"] = [*found.get("keywords", []), *value]
                else:
                    found.setdefault(key, value)  # EXIF first, then XMP, then IPTC
        except Exception as exc:  # untrusted input: one unreadable block costs only itself
            logger.debug("%s: ignoring unreadable metadata (%s): %s", uri, reader.__name__, exc)
    return _finish(found)


def read_exif_metadata(exif: Image.Exif, *, uri: str = "<bytes>") -> dict[str, Any]:
    """The metadata payload keys of a bare EXIF block (a camera RAW file's TIFF header).

    Args:
        exif: The block, e.g. ``Image.Exif()`` loaded from a DNG's or NEF's bytes.
        uri: Where it came from, for the debug log.

    Returns:
        What the EXIF part of :func:`read_photo_metadata` finds, plus ``meta_version``.
    """
    found: dict[str, Any] = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = _exif_fields(exif)
    except Exception as exc:  # untrusted input
        logger.debug("%s: ignoring unreadable EXIF: %s", uri, exc)
    return _finish(found)


def _finish(found: dict[str, Any]) -> dict[str, Any]:
    keywords = _clean_keywords(found.pop("keywords", []))
    if keywords:
        found["keywords"] = keywords
        found["keywords_lc"] = list(dict.fromkeys(k.lower() for k in keywords))
    if "camera" in found:
        found["camera_lc"] = found["camera"].lower()
    found["meta_version"] = METADATA_VERSION
    return found


# -- EXIF ------------------------------------------------------------------------------------------


def _read_exif(image: Image.Image) -> dict[str, Any]:
    return _exif_fields(image.getexif())


def _exif_fields(exif: Image.Exif) -> dict[str, Any]:
    if not exif:
        return {}
    found: dict[str, Any] = {}
    sub = _ifd(exif, ExifTags.IFD.Exif)
    for date_tag, offset_tag in (
        (ExifTags.Base.DateTimeOriginal, ExifTags.Base.OffsetTimeOriginal),
        (ExifTags.Base.DateTimeDigitized, ExifTags.Base.OffsetTimeDigitized),
    ):
        taken = _exif_date(sub.get(date_tag), sub.get(offset_tag))
        if taken is not None:
            found.update(taken)
            break
    found.update(_gps(_ifd(exif, ExifTags.IFD.GPSInfo)))
    camera = _camera(_text(exif.get(ExifTags.Base.Make)), _text(exif.get(ExifTags.Base.Model)))
    if camera:
        found["camera"] = camera
    lens = _text(sub.get(ExifTags.Base.LensModel), MAX_CAMERA_CHARS)
    if lens:
        lens_make = _text(sub.get(ExifTags.Base.LensMake), MAX_CAMERA_CHARS)
        found["lens"] = _camera(lens_make, lens) or lens
    return found


def _ifd(exif: Image.Exif, which: ExifTags.IFD) -> dict[int, Any]:
    try:
        return dict(exif.get_ifd(which))
    except Exception:  # a sub-IFD pointer into nowhere
        return {}


def _exif_date(value: Any, offset: Any) -> dict[str, Any] | None:
    text = _text(value, 64)
    if not text:
        return None
    match = _EXIF_DATE.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, inline = match.groups()
    zone = inline or _offset_text(offset)
    return _taken(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), zone)


def _offset_text(value: Any) -> str | None:
    text = _text(value, 16)
    if text and _OFFSET.match(text):
        return text.strip()
    return None


def _taken(
    year: int, month: int, day: int, hour: int, minute: int, second: int, zone: str | None
) -> dict[str, Any] | None:
    try:
        wall = datetime(year, month, day, hour, minute, second)
    except ValueError:  # month 13, 31 February, 0000:00:00
        return None
    if year < EARLIEST_YEAR or wall > datetime.now() + LATEST_AHEAD:
        return None
    tz = _zone(zone)
    iso = wall.replace(tzinfo=tz).isoformat() if tz is not None else wall.isoformat()
    return {"taken": iso, "taken_ts": wall.replace(tzinfo=UTC).timestamp()}


def _zone(text: str | None) -> timezone | None:
    if not text:
        return None
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if hours > 14 or minutes > 59:
        return None
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _gps(gps: dict[int, Any]) -> dict[str, Any]:
    if not gps:
        return {}
    lat = _degrees(gps.get(2), gps.get(1), "NS")
    lon = _degrees(gps.get(4), gps.get(3), "EW")
    if lat is None or lon is None or abs(lat) > 90 or abs(lon) > 180 or lat == lon == 0.0:
        return {}
    found: dict[str, Any] = {"lat": lat, "lon": lon, "location": {"lon": lon, "lat": lat}}
    altitude = _number(gps.get(6))
    if altitude is not None and altitude < 100_000:
        below = gps.get(5)
        below_sea = below in (1, b"\x01") or (isinstance(below, bytes) and below[:1] == b"\x01")
        found["alt"] = round(-altitude if below_sea else altitude, 2)
    return found


def _degrees(value: Any, ref: Any, refs: str) -> float | None:
    if not isinstance(value, tuple | list) or not 1 <= len(value) <= 3:
        return None
    parts = [_number(part) for part in value]
    if any(part is None or part < 0 for part in parts):
        return None
    degrees = sum(part / 60**i for i, part in enumerate(parts))  # type: ignore[operator]
    ref_text = _text(ref, 4).upper()
    if ref_text and ref_text[0] not in refs:
        return None
    if ref_text[:1] == refs[1]:
        degrees = -degrees
    return round(degrees, 7) if math.isfinite(degrees) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)  # IFDRational with a zero denominator is NaN
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _camera(make: str, model: str) -> str:
    if model and make and not model.lower().startswith(make.split()[0].lower()):
        return f"{make} {model}"[:MAX_CAMERA_CHARS]
    return (model or make)[:MAX_CAMERA_CHARS]


def _text(value: Any, limit: int = MAX_CAMERA_CHARS) -> str:
    """A short, printable string from an EXIF/IPTC value, or ``""``."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            value = value.decode("latin-1")
    if not isinstance(value, str):
        return ""
    value = "".join(ch for ch in value.replace("\x00", " ") if ch.isprintable())
    return " ".join(value.split())[:limit]


# -- XMP -------------------------------------------------------------------------------------------


def _read_xmp(image: Image.Image) -> dict[str, Any]:
    packet = _xmp_packet(image)
    if not packet:
        return {}
    if len(packet) > MAX_XMP_BYTES:
        logger.debug("ignoring an XMP packet of %d bytes", len(packet))
        return {}
    if b"<!DOCTYPE" in packet or b"<!ENTITY" in packet:
        return {}  # XMP has no use for them; entity expansion is an attack
    start = packet.find(b"<x:xmpmeta")
    if start < 0:
        start = packet.find(b"<rdf:RDF")
    if start < 0:
        return {}
    root = ET.fromstring(_strip_packet(packet[start:]))
    found: dict[str, Any] = {}
    for tag in ("exif:DateTimeOriginal", "xmp:CreateDate", "photoshop:DateCreated"):
        taken = _xmp_date(_xmp_value(root, tag))
        if taken is not None:
            found.update(taken)
            break
    keywords = _xmp_values(root, "dc:subject")
    if keywords:
        found["keywords"] = keywords
    for key, tag in (("title", "dc:title"), ("description", "dc:description")):
        text = _text(_xmp_value(root, tag), MAX_TEXT_CHARS)
        if text:
            found[key] = text
    return found


def _xmp_packet(image: Image.Image) -> bytes:
    info = image.info
    raw = info.get("xmp") or info.get("XML:com.adobe.xmp") or b""
    if not raw and hasattr(image, "tag_v2"):  # TIFF keeps XMP in tag 700
        raw = image.tag_v2.get(700, b"")
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "replace")
    return raw if isinstance(raw, bytes) else b""


def _strip_packet(data: bytes) -> bytes:
    end = data.rfind(b"</x:xmpmeta>")
    if end >= 0:
        return data[: end + len(b"</x:xmpmeta>")]
    end = data.rfind(b"</rdf:RDF>")
    return data[: end + len(b"</rdf:RDF>")] if end >= 0 else data


def _qualified(tag: str) -> str:
    prefix, name = tag.split(":")
    return f"{{{_NS[prefix]}}}{name}"


def _xmp_value(root: ET.Element, tag: str) -> str | None:
    qualified = _qualified(tag)
    for description in root.iter(_qualified("rdf:Description")):
        attribute = description.get(qualified)
        if attribute is not None:
            return attribute
    for element in root.iter(qualified):
        items = [li.text for li in element.iter(_qualified("rdf:li")) if li.text]
        if items:
            return items[0]  # rdf:Alt: the default language first
        if element.text and element.text.strip():
            return element.text
    return None


def _xmp_values(root: ET.Element, tag: str) -> list[str]:
    values: list[str] = []
    for element in root.iter(_qualified(tag)):
        values += [li.text for li in element.iter(_qualified("rdf:li")) if li.text]
    return values


def _xmp_date(value: str | None) -> dict[str, Any] | None:
    if not value:
        return None
    match = _XMP_DATE.match(value[:64])
    if match is None:
        return None
    year, month, day, hour, minute, second, zone = match.groups()
    return _taken(
        int(year),
        int(month or 1),
        int(day or 1),
        int(hour or 0),
        int(minute or 0),
        int(second or 0),
        zone,
    )


# -- IPTC ------------------------------------------------------------------------------------------


def _read_iptc(image: Image.Image) -> dict[str, Any]:
    if image.format not in ("JPEG", "MPO", "TIFF"):
        return {}
    info = IptcImagePlugin.getiptcinfo(image)
    if not info:
        return {}
    found: dict[str, Any] = {}
    keywords = info.get(_IPTC_KEYWORDS)
    if keywords is not None:
        items = keywords if isinstance(keywords, list) else [keywords]
        found["keywords"] = [_text(item, MAX_KEYWORD_CHARS) for item in items]
    for key, tag in (("title", _IPTC_TITLE), ("description", _IPTC_CAPTION)):
        value = info.get(tag)
        text = _text(value[0] if isinstance(value, list) and value else value, MAX_TEXT_CHARS)
        if text:
            found[key] = text
    return found


def _clean_keywords(values: list[Any]) -> list[str]:
    cleaned = (_text(value, MAX_KEYWORD_CHARS) for value in values)
    return list(dict.fromkeys(value for value in cleaned if value))[:MAX_KEYWORDS]
