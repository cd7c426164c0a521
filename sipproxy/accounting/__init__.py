"""Call accounting: RADIUS Accounting-Requests (Start, Interim-Update, Stop, Failed) and
rows of the shared ``accounting`` table, from the proxy's call events.

* :mod:`.events` -- what each record carries, from the call events (sans-I/O);
* :mod:`.radius` -- the local persistent queue (SQLite) and the RADIUS client (pyrad
  packets over gevent UDP, failover in the configured order);
* :mod:`.store` -- the ``accounting`` table rows (SQLAlchemy);
* :mod:`.service` -- :class:`~.service.Accounting`, the object the proxy calls
  (``Proxy(events=...)``), and its background sender.

``dictionary.msp`` next to these modules is the RADIUS dictionary of the SIP attributes,
for the RADIUS server; ``dictionary`` is the client's (standard attributes + that one).
docs/accounting.md describes the records.
"""
