"""Safe XML parsing shared by the CommonRoad and Lanelet2 readers.

Every XML map is parsed with ``defusedxml``: entity declarations (billion laughs, quadratic
blow-up) and external entities or DTDs are refused with a MapFormatError naming the file, before
any expansion happens.

The content is fed to the parser in pieces, each checked first, so that a file inflating to just
under ``MAPENC_MAX_INFLATED_MB`` of junk is refused on its structure after a few MiB instead of
being built into a tree of gigabytes:
- the root element is checked as soon as it opens;
- at most ``max_xml_elements()`` elements (``MAPENC_MAX_XML_ELEMENTS``, default
  ``MAX_XML_ELEMENTS``: ten times the largest real map, a CommonRoad NGSIM scene of 77,000);
- no stretch of over ``MAX_MARKUP_GAP_BYTES`` without markup (a text value, whitespace, one tag's
  attributes: real ones are tens of bytes).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

import numpy as np
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from mapenc.errors import MapFormatError
from mapenc.maps.io import read_bytes
from mapenc.maps.types import FloatArray
from mapenc.safeio import limit_setting

MAX_XML_ELEMENTS = 1_000_000
MAX_XML_ELEMENTS_ENV = "MAPENC_MAX_XML_ELEMENTS"
MAX_MARKUP_GAP_BYTES = 1 << 20
# Bytes handed to the parser at a time, each piece checked before it is parsed.
_FEED_BYTES = 1 << 20
_MARKUP = ord("<")


class _Refused(Exception):
    """A structural refusal raised from inside the parser; becomes a MapFormatError."""


def max_xml_elements() -> int:
    """The most elements one XML map may hold: ``$MAPENC_MAX_XML_ELEMENTS`` or the default."""
    return limit_setting(MAX_XML_ELEMENTS_ENV, MAX_XML_ELEMENTS, "elements")


def parse_xml(path: Path, root_tag: str) -> Element:
    """Root element of the XML file at ``path`` (gzip handled by ``read_bytes``).

    Raises MapFormatError when the file is missing, empty, not well-formed (e.g. truncated),
    declares entities or external references, its root element is not ``root_tag``, or it is
    over the structural limits of the module docstring (refused when the limit is reached).
    """
    raw = read_bytes(path)
    try:
        with _cyclic_gc_paused():
            root = _defused_parse(raw, root_tag)
    except DefusedXmlException as err:
        raise MapFormatError(path, f"unsafe XML refused ({type(err).__name__}: {err})") from None
    except ParseError as err:
        raise MapFormatError(path, f"malformed or truncated XML ({err})") from None
    except _Refused as err:
        raise MapFormatError(path, str(err)) from None
    return root


def _defused_parse(raw: bytes, root_tag: str) -> Element:
    """``defusedxml.ElementTree.fromstring`` with the element callbacks wired straight to the C
    TreeBuilder, fed piece by piece under the structural limits.

    defusedxml subclasses the pure-Python XMLParser, which routes every element through two Python
    methods that only rewrite namespaced names; map files have no namespaces, and skipping them
    halves the parse time. defusedxml's entity, DTD and external-reference handlers stay in place.
    """
    target = TreeBuilder()
    parser = DefusedXMLParser(
        target=target, forbid_dtd=False, forbid_entities=True, forbid_external=True
    )
    expat = parser.parser
    expat.ordered_attributes = False

    def open_root(tag: str, attrib: dict[str, str]) -> None:
        if tag != root_tag:
            raise _Refused(f"root element is <{tag}>, expected <{root_tag}>")
        expat.StartElementHandler = target.start  # every later element: straight to C
        target.start(tag, attrib)

    expat.StartElementHandler = open_root
    expat.EndElementHandler = target.end
    checks = _StructureChecks(max_xml_elements())
    for offset in range(0, len(raw), _FEED_BYTES):
        piece = raw[offset : offset + _FEED_BYTES]
        checks.admit(piece, offset)
        parser.feed(piece)
    root: Element = parser.close()
    return root


class _StructureChecks:
    """Counts the elements of the pieces fed so far and measures the stretches between markup,
    refusing (``_Refused``) a piece that would pass a limit, before it is parsed."""

    def __init__(self, max_elements: int) -> None:
        self.max_elements = max_elements
        self.elements = 0
        self.last_markup = 0  # offset of the last '<' seen

    def admit(self, piece: bytes, offset: int) -> None:
        """Check ``piece``, found at byte ``offset`` of the content."""
        marks = offset + np.flatnonzero(np.frombuffer(piece, dtype=np.uint8) == _MARKUP)
        # Between markup: the stretches closed in this piece and the one still open at its end.
        ends = np.append(marks, offset + len(piece))
        gap = int(np.diff(ends, prepend=self.last_markup).max())
        if gap > MAX_MARKUP_GAP_BYTES:
            raise _Refused(
                f"over {MAX_MARKUP_GAP_BYTES >> 20} MiB without markup near byte {offset:,} "
                "(map values are numbers and names of a few bytes)"
            )
        if len(marks):
            self.last_markup = int(marks[-1])
        # An element opens at each '<' that does not close one ('</'); comments and processing
        # instructions count too, which only makes the count an upper bound.
        self.elements += len(marks) - piece.count(b"</")
        if self.elements > self.max_elements:
            raise _Refused(
                f"over {self.max_elements:,} XML elements by byte {offset + len(piece):,} (real "
                f"maps hold tens of thousands); set {MAX_XML_ELEMENTS_ENV} to allow more"
            )


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a tree is built.

    Building a tree of ~10^5 elements triggers repeated full collections that scan every element
    made so far; pausing them makes parsing 2-3x faster. The tree holds no reference cycles.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_floats(path: Path, texts: list[str | None], what: str) -> FloatArray:
    """(N,) float64 from XML text values; MapFormatError naming ``what`` when one is not a number."""
    if None in texts:
        raise MapFormatError(path, f"{what}: an element has no value")
    try:
        return np.array(texts, dtype=np.float64)
    except ValueError:
        raise MapFormatError(path, f"{what}: a value is not a number") from None
