"""NGNPro fault codes (API.md section 5.2) and the one exception port code raises.

``raise NGNProError(SIP_ACCOUNT_EXISTS, "Account alice@example.com already exists")``
becomes a SOAP Fault whose ``detail/exception`` carries ``errorcode`` and ``errorstring``:
the only part of a fault the PHP client reads.  It subclasses spyne's ``Fault`` so that
spyne's own pipeline carries it to the protocol's serializer untouched.
"""

from __future__ import annotations

from spyne.model.fault import Fault

SIP_DOMAIN_EXISTS = 1001
SIP_DOMAIN_NOT_FOUND = 1002
SIP_ACCOUNT_NOT_FOUND = 1010
SIP_ACCOUNT_EXISTS = 1011
ALIAS_EXISTS = 1012
ALIAS_NOT_FOUND = 1013
TRUSTED_PEER_EXISTS = 1020
TRUSTED_PEER_NOT_FOUND = 1021
LCR_NOT_FOUND = 1022
GROUP_ACCOUNT_NOT_FOUND = 1030
NOT_IN_GROUP = 1031
INVALID_VALUE = 1040
NO_DATA = 2000
INVALID_VOUCHER = 2001
ENUM_RANGE_EXISTS = 3001
ENUM_NUMBER_NOT_FOUND = 3002
ENUM_NUMBER_EXISTS = 3003
ENUM_RANGE_NOT_FOUND = 3004
ENUM_OUTSIDE_RANGE = 3005
RATING_NOT_FOUND = 4001
CUSTOMER_EXISTS = 5001
CUSTOMER_NOT_FOUND = 5002
ZONE_EXISTS = 7001
ZONE_NOT_FOUND = 7002
RECORD_EXISTS = 7003
RECORD_NOT_FOUND = 7004
SERVER_ERROR = 9000
AUTH_FAILED = 9001
PERMISSION_DENIED = 9002
INVALID_REQUEST = 9003
NOT_IMPLEMENTED = 9999


class NGNProError(Fault):
    """A fault with an NGNPro error code; the message names the field or the record."""

    def __init__(self, code: int, message: str) -> None:
        client = code in (AUTH_FAILED, PERMISSION_DENIED, INVALID_REQUEST) or 1040 <= code < 1050
        super().__init__(faultcode="Client" if client else "Server", faultstring=message)
        self.code = int(code)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def not_implemented(what: str) -> NGNProError:
    return NGNProError(NOT_IMPLEMENTED, f"{what} is not implemented yet")
