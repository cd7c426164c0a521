"""The NGNPro-compatible SOAP framework: rpc/encoded SOAP 1.1 on spyne.

Contract notes for B1/B2 (changes to /tmp/ngnpro_contract.md are listed here):

* none so far.  Extras beyond the contract: ``scope.login_id``, ``scope.reseller_active``,
  ``scope.properties`` (the login's CustomerProperty values), ``scope.unscoped``,
  ``scope.require_admin()``, ``scope.allows(record)``; ``run_query(..., default_order=col)``;
  a filter in ``run_query(filters=...)`` may be a callable ``(stmt, value) -> stmt`` for
  members that are not a plain column (e.g. SipQuery ``groups``).
* Methods may return dicts instead of spyne instances (cheaper; members by wire name).
* Tests: ``tests/ngnpro/harness.py`` also has ``call(url, port, method, params)``, a fast
  PEAR-shaped client in Python (no PHP start per call).  ``ngnpro_server`` is one server per
  test session and backend, its tables emptied before each test.
* After adding or renaming a method, regenerate the WSDL: ``python -m ngnpro.soap.wsdl``.

How to add a port
=================

1. Types: spyne ``ComplexModel`` subclasses with ``__namespace__ = NS_TYPES`` and
   ``__type_name__`` the API name; members as ``_type_info = [("firstName", Unicode), ...]``
   (keeps wire order) or class attributes; lists as ``Array(T)``; ints ``Integer``,
   flags ``Boolean`` (or ``Integer`` when the API says int 0/1), money ``Double``.
   Shared generic types are in :mod:`ngnpro.soap.types` (``Range``, ``OrderBy``,
   ``StringArray``, ``IntArray``).  Every member is optional.  Never name a member
   ``Envelope``, ``Header`` or ``Body`` (API.md 1.8).

2. Service: subclass :class:`PortService`, set ``__port_namespace__`` to the port's method
   namespace (``NS_SIP``, ``NS_ENUM``, ``NS_DNS``...), and declare each method with spyne's
   ``@rpc``; parameter names are the wire names of API.md section 3, the function name is
   the method name::

       from spyne import rpc
       from ngnpro.soap import NS_SIP, PortService, call_context
       from ngnpro.soap.faults import NGNProError, SIP_ACCOUNT_NOT_FOUND

       class SipAccountService(PortService):
           __port_namespace__ = NS_SIP

           @rpc(SipId, _returns=SipAccount)
           def getAccount(ctx, sipId):
               c = call_context(ctx)          # c.session (or c.connection), c.scope, c.config
               ...
               return SipAccount(...)         # or a dict with the member names

   Several classes may serve the same namespace (B1's and B2's SipPort classes do); a
   (namespace, method name) pair must be unique.  Methods without ``_returns`` answer an
   empty response wrapper (what the PHP executor wants for add/update/delete).  Return
   spyne instances or dicts built from plain values, not ORM objects (the session is
   closed before the response is written).

3. Errors: ``raise NGNProError(code, "message naming the field or record")`` with a code
   from :mod:`ngnpro.soap.faults`.  Anything else raised becomes fault 9000 (logged with
   its traceback, which never reaches the client).  A fault rolls the whole call back.

4. Register: add the class to ``SERVICES`` in :mod:`ngnpro.ports` (one line).  The WSDL
   (regenerate ``wsdl/ngnpro.wsdl`` with ``python -m ngnpro.soap.wsdl``; a test compares it with
   the served methods) and the server pick it up.

5. Test: ``tests/ngnpro/harness.py`` gives ``php_call``, ``php_wsdl_call``, ``zeep_client``,
   ``raw_call`` and ``fault_code``; the ``ngnpro_server`` fixture (``tests/ngnpro/conftest.py``)
   runs ``python -m ngnpro`` on each test database.
"""

from __future__ import annotations

from spyne import rpc

from .const import (
    NS_CUSTOMER,
    NS_DNS,
    NS_ENUM,
    NS_NETWORK,
    NS_PRESENCE,
    NS_PRESENCE_TYPES,
    NS_RATING,
    NS_SIP,
    NS_TYPES,
    NS_VOICEMAIL,
)
from .context import CallContext, Scope, call_context
from .faults import NGNProError
from .service import PortService

__all__ = [
    "NS_CUSTOMER", "NS_DNS", "NS_ENUM", "NS_NETWORK", "NS_PRESENCE", "NS_PRESENCE_TYPES",
    "NS_RATING", "NS_SIP", "NS_TYPES", "NS_VOICEMAIL", "CallContext", "NGNProError",
    "PortService", "Scope", "call_context", "rpc",
]
