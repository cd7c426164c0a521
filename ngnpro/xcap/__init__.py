"""The XCAP server (RFC 4825) on ngnpro's HTTP server.

Clients (presence-capable phones) store their authorization rules, buddy lists and
presence documents here; the presence agent in sipproxy reads the same rows
(``ngnpro.models.xcap.XcapDocument``) and learns of each change through the change feed
(topic ``xcap``, key ``auid/xui/filename``).

One module per idea, the pure ones apart from the I/O:

* ``uri``: the request URI (document selector, node selector, namespace bindings);
* ``selector``: parsing node selectors and applying them to an lxml tree;
* ``xmlsafe``: the hardened XML parser (no DTD, no entities, no network);
* ``errors``: the ``application/xcap-error+xml`` documents of RFC 4825 section 11;
* ``usages`` and ``constraints``: the application usages, their schemas and rules;
* ``operations``: GET, PUT and DELETE on a document, without I/O;
* ``generated``: the xcap-caps and xcap-directory documents;
* ``store``: the SQL side (one transaction per write, with its change-log row);
* ``app``: the WSGI application (authentication, preconditions, dispatch).
"""
