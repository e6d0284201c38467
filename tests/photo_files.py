"""Photos with real EXIF, XMP and GPS blocks, written with Pillow (shared by the metadata tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, TiffImagePlugin

Rational = TiffImagePlugin.IFDRational

LISBON = (38.7223, -9.1393)
PORTO = (41.1496, -8.6109)
PARIS = (48.8566, 2.3522)


def dms(value: float) -> tuple[Rational, Rational, Rational]:
    """Degrees as EXIF writes them: degrees, minutes, seconds (hundredths)."""
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = (value - degrees - minutes / 60) * 3600
    return Rational(degrees, 1), Rational(minutes, 1), Rational(round(seconds * 100), 100)


def exif_block(
    *,
    taken: Any = None,
    offset: Any = None,
    digitized: Any = None,
    gps: tuple[float, float] | None = None,
    gps_raw: dict[int, Any] | None = None,
    altitude: float | None = None,
    make: Any = None,
    model: Any = None,
    lens: Any = None,
) -> Image.Exif:
    """An EXIF block with the given fields (any value, garbage included, as it will be written)."""
    exif = Image.Exif()
    if make is not None:
        exif[ExifTags.Base.Make] = make
    if model is not None:
        exif[ExifTags.Base.Model] = model
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    if taken is not None:
        sub[ExifTags.Base.DateTimeOriginal] = taken
    if offset is not None:
        sub[ExifTags.Base.OffsetTimeOriginal] = offset
    if digitized is not None:
        sub[ExifTags.Base.DateTimeDigitized] = digitized
    if lens is not None:
        sub[ExifTags.Base.LensModel] = lens
    if gps is not None or gps_raw is not None:
        block = exif.get_ifd(ExifTags.IFD.GPSInfo)
        if gps is not None:
            lat, lon = gps
            block[1] = "N" if lat >= 0 else "S"
            block[2] = dms(lat)
            block[3] = "E" if lon >= 0 else "W"
            block[4] = dms(lon)
        if altitude is not None:
            block[5] = b"\x01" if altitude < 0 else b"\x00"
            block[6] = Rational(round(abs(altitude) * 10), 10)
        block.update(gps_raw or {})
    return exif


def xmp_packet(
    *, keywords: list[str] = (), title: str | None = None, created: str | None = None
) -> bytes:
    """An XMP packet with dc:subject keywords, a dc:title and an xmp:CreateDate."""
    subject = "".join(f"<rdf:li>{k}</rdf:li>" for k in keywords)
    title_xml = (
        f'<dc:title><rdf:Alt><rdf:li xml:lang="x-default">{title}</rdf:li></rdf:Alt></dc:title>'
        if title
        else ""
    )
    created_attr = f' xmp:CreateDate="{created}"' if created else ""
    return (
        '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        f'xmlns:xmp="http://ns.adobe.com/xap/1.0/"{created_attr}>'
        f"<dc:subject><rdf:Bag>{subject}</rdf:Bag></dc:subject>{title_xml}"
        '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def write_photo(
    path: Path,
    colour: str = "red",
    *,
    exif: Image.Exif | None = None,
    xmp: bytes | None = None,
    size: tuple[int, int] = (64, 48),
) -> Path:
    """A small JPEG with the given EXIF and XMP blocks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {}
    if exif is not None:
        options["exif"] = exif
    if xmp is not None:
        options["xmp"] = xmp
    image = Image.new("RGB", size, colour)
    for x in range(0, size[0], 7):  # a pattern, so that embeddings differ beyond colour
        image.putpixel((x, x % size[1]), (len(colour) * 30 % 256, 0, 0))
    image.save(path, "JPEG", **options)
    return path


def write_trip(folder: Path) -> dict[str, Path]:
    """Four photos: Lisbon (iPhone, June 2023), Porto (Canon, Aug 2022), Paris (Sept 2023, no
    camera), and one without metadata."""
    return {
        "lisbon": write_photo(
            folder / "lisbon.jpg",
            "red",
            exif=exif_block(
                taken="2023:06:15 14:30:00",
                offset="+01:00",
                gps=LISBON,
                altitude=45.5,
                make="Apple",
                model="iPhone 12",
            ),
            xmp=xmp_packet(keywords=["Holiday", "beach"], title="Tram 28"),
        ),
        "porto": write_photo(
            folder / "porto.jpg",
            "green",
            exif=exif_block(
                taken="2022:08:01 10:00:00", gps=PORTO, make="Canon", model="Canon EOS 5D"
            ),
        ),
        "paris": write_photo(
            folder / "paris.jpg", "blue", exif=exif_block(taken="2023:09:01 09:00:00", gps=PARIS)
        ),
        "plain": write_photo(folder / "plain.jpg", "yellow"),
    }
