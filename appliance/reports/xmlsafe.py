"""Safe XML parsing for reports: defusedxml with no DTD at all and a nesting limit.

defusedxml refuses entity declarations and external references ("billion laughs",
XXE); we also refuse any DTD (DMARC reports never carry one) and elements nested deeper
than `Limits.max_depth` (the schema of RFC 7489 appendix C nests five deep). Namespaces
are dropped from tag names: DMARCbis reports use `urn:ietf:params:xml:ns:dmarc-2.0`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # the TreeBuilder only; parsing is defused
from xml.parsers.expat import ExpatError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from appliance.reports.model import DEFAULT_LIMITS, Limits, ReportError


class _DepthLimitedBuilder:
    """A TreeBuilder target that refuses deep nesting and strips namespaces."""

    def __init__(self, max_depth: int) -> None:
        self._builder = ET.TreeBuilder()
        self._depth = 0
        self._max_depth = max_depth

    def start(self, tag: str, attrs: dict[str, str]) -> ET.Element:
        self._depth += 1
        if self._depth > self._max_depth:
            raise ReportError(f"XML nested deeper than {self._max_depth} elements")
        return self._builder.start(tag.rsplit("}", 1)[-1], attrs)

    def end(self, tag: str) -> ET.Element:
        self._depth -= 1
        return self._builder.end(tag.rsplit("}", 1)[-1])

    def data(self, text: str) -> None:
        self._builder.data(text)

    def close(self) -> ET.Element:
        return self._builder.close()


def parse_xml(data: bytes, limits: Limits = DEFAULT_LIMITS) -> ET.Element:
    """The root element of `data`.

    Raises:
        ReportError: not well-formed, a DTD or entity, too deep, or too large.
    """
    if len(data) > limits.max_uncompressed:
        raise ReportError(f"XML larger than {limits.max_uncompressed} bytes")
    parser = DefusedXMLParser(target=_DepthLimitedBuilder(limits.max_depth),
                              forbid_dtd=True, forbid_entities=True, forbid_external=True)
    try:
        parser.feed(data)
        root: ET.Element = parser.close()
    except ReportError:
        raise
    except DefusedXmlException as exc:
        raise ReportError(f"forbidden XML construct: {type(exc).__name__}") from None
    except (ET.ParseError, ExpatError, ValueError, UnicodeError, LookupError) as exc:
        raise ReportError(f"malformed XML: {exc}") from None
    return root
