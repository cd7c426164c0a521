"""Generic wire types shared by every port (API.md sections 2.1 and 4).

Port-specific types live with their port; these are the ones every paged query uses.
Every member is optional (spyne's default ``min_occurs=0, nillable=True``) because the
PHP client omits members freely.  Lists are ``Array(T)``: the rpc/encoded protocol
writes them as ``SOAP-ENC:Array`` with ``item`` children whatever the declared name.
"""

from __future__ import annotations

from spyne.model.complex import Array, ComplexModel
from spyne.model.primitive import Boolean, Double, Integer, Unicode

from .const import NS_TYPES

__all__ = [
    "Array", "Boolean", "ComplexModel", "Double", "Integer", "Unicode",
    "Range", "OrderBy", "StringArray", "IntArray", "NS_TYPES",
]


class Range(ComplexModel):
    """``{start, count}``: which slice of a paged result to return (applied after ``total``)."""

    __namespace__ = NS_TYPES
    __type_name__ = "Range"
    _type_info = [("start", Integer), ("count", Integer)]


class OrderBy(ComplexModel):
    """``{attribute, direction}``; unknown attributes are tolerated (stale UI state)."""

    __namespace__ = NS_TYPES
    __type_name__ = "OrderBy"
    _type_info = [("attribute", Unicode), ("direction", Unicode)]


StringArray = Array(Unicode)
IntArray = Array(Integer)
