"""Authentication of requests (RFC 3261 section 22), sans-I/O.

* :mod:`.authentication` -- the digest check of REGISTER (401) and of initial requests
  (407) against the provisioned accounts.

Authorization (barring, limits, prepaid) is coming (the authorization issue).  May import
:mod:`sipproxy.sip` and :mod:`sipproxy.directory.account`; never gevent, socket or
SQLAlchemy.
"""
