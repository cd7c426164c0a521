"""Authentication of requests (RFC 3261 section 22), sans-I/O.

* :mod:`.authentication` -- the digest check of REGISTER (401) and of initial requests
  (407) against the provisioned accounts.
* :mod:`.ordering` -- which digest challenges each client is offered (SHA-256 and MD5, or
  MD5 alone to a client learnt not to do SHA-256; RFC 8760 2.3/2.4).

* :mod:`.policy` -- authorization: the outgoing and incoming rules of the routing guide
  (blocked, PSTN access, quota, prepaid, call limit, barring; ACL, accept rules, reject
  list), each refusal a status, a reason and a Warning text.
* :mod:`.pike` -- PIKE flood detection: a source over the request rate is blocked.

May import
:mod:`sipproxy.sip` and :mod:`sipproxy.directory.account`; never gevent, socket or
SQLAlchemy.
"""
