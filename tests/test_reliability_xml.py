"""XML maps are refused on their structure as the content is parsed, not after a tree of the
whole (possibly bomb-inflated) content has been built."""

from __future__ import annotations

import gzip
import tracemalloc
from pathlib import Path

import pytest

from mapenc.errors import ConfigError, MapFormatError
from mapenc.maps.xmlparse import MAX_MARKUP_GAP_BYTES, MAX_XML_ELEMENTS_ENV, parse_xml
from mapenc.safeio import gunzip

HEAD = b'<?xml version="1.0"?>\n<commonRoad timeStepSize="0.1">\n'


def gzipped(path: Path, content: bytes) -> Path:
    path.write_bytes(gzip.compress(content, compresslevel=1))
    return path


def test_a_bomb_of_tiny_elements_is_refused_after_a_few_mib(tmp_path: Path) -> None:
    content = HEAD + b"<x/>" * (16 << 20) + b"</commonRoad>\n"  # 64 MiB, 16.7 million elements
    path = gzipped(tmp_path / "elements.xml.gz", content)
    with pytest.raises(MapFormatError, match=MAX_XML_ELEMENTS_ENV) as refusal:
        parse_xml(path, "commonRoad")
    refused_at = int(str(refusal.value).split("by byte ")[1].split(" ")[0].replace(",", ""))
    assert refused_at <= 8 << 20  # one million elements of four bytes, plus the piece being read
    assert str(refusal.value).startswith(f"{path}: over 1,000,000 XML elements")


def test_the_element_limit_is_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "small.xml"
    path.write_bytes(HEAD + b"<x/>" * 5_000 + b"</commonRoad>\n")
    assert len(parse_xml(path, "commonRoad")) == 5_000
    monkeypatch.setenv(MAX_XML_ELEMENTS_ENV, "1000")
    with pytest.raises(MapFormatError, match="over 1,000 XML elements"):
        parse_xml(path, "commonRoad")
    monkeypatch.setenv(MAX_XML_ELEMENTS_ENV, "lots")
    with pytest.raises(ConfigError, match=MAX_XML_ELEMENTS_ENV):
        parse_xml(path, "commonRoad")


@pytest.mark.parametrize(
    "filler",
    [b" " * (8 << 20), b"<x>" + b"1" * (8 << 20) + b"</x>", b'<x v="' + b"1" * (8 << 20) + b'"/>'],
    ids=["whitespace", "text", "attribute"],
)
def test_megabytes_without_markup_are_refused_near_where_they_start(
    filler: bytes, tmp_path: Path
) -> None:
    path = gzipped(tmp_path / "gap.xml.gz", HEAD + filler + b"</commonRoad>\n")
    with pytest.raises(MapFormatError, match="without markup near byte") as refusal:
        parse_xml(path, "commonRoad")
    near = int(str(refusal.value).split("near byte ")[1].split(" ")[0].replace(",", ""))
    assert near <= 2 * MAX_MARKUP_GAP_BYTES


def test_the_root_element_is_checked_as_it_opens(tmp_path: Path) -> None:
    # Truncated junk after the wrong root: the root is what is wrong, and it is found first.
    path = gzipped(tmp_path / "osm.xml.gz", b'<osm version="0.6">' + b"<node/>" * 1000)
    with pytest.raises(MapFormatError, match="root element is <osm>, expected <commonRoad>"):
        parse_xml(path, "commonRoad")


def test_gunzip_holds_the_content_once() -> None:
    content = b"<x/>" * (8 << 20)  # 32 MiB
    packed = gzip.compress(content, compresslevel=1)
    tracemalloc.start()
    try:
        inflated = gunzip(packed)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert inflated == content
    assert peak < len(content) + (4 << 20), f"peak {peak >> 20} MiB for 32 MiB of content"
