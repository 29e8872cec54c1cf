"""Safe XML parsing shared by the CommonRoad and Lanelet2 readers.

Every XML map is parsed with ``defusedxml``: entity declarations (billion laughs, quadratic
blow-up) and external entities or DTDs are refused with a MapFormatError naming the file, before
any expansion happens.
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


def parse_xml(path: Path, root_tag: str) -> Element:
    """Root element of the XML file at ``path`` (gzip handled by ``read_bytes``).

    Raises MapFormatError when the file is missing, empty, not well-formed (e.g. truncated),
    declares entities or external references, or its root element is not ``root_tag``.
    """
    raw = read_bytes(path)
    try:
        with _cyclic_gc_paused():
            root = _defused_fromstring(raw)
    except DefusedXmlException as err:
        raise MapFormatError(path, f"unsafe XML refused ({type(err).__name__}: {err})") from None
    except ParseError as err:
        raise MapFormatError(path, f"malformed or truncated XML ({err})") from None
    if root.tag != root_tag:
        raise MapFormatError(path, f"root element is <{root.tag}>, expected <{root_tag}>")
    return root


def _defused_fromstring(raw: bytes) -> Element:
    """``defusedxml.ElementTree.fromstring`` with the element callbacks wired straight to the C
    TreeBuilder.

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
    expat.StartElementHandler = target.start
    expat.EndElementHandler = target.end
    parser.feed(raw)
    root: Element = parser.close()
    return root


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
