"""The presence agent (RFC 3856, 3857/3858, 3903, 4662-ready, 5875, 6665): sipproxy as the
notifier of ``presence``, ``presence.winfo`` and ``xcap-diff`` and the compositor of the
local users' PUBLISHed state, authorized by their pres-rules (RFC 4745, 5025, OMA).

* pure event-package logic, no sockets and no SQL (an import-linter contract checks it):
  :mod:`.subscription` (RFC 6665 notifier rules), :mod:`.publication` (RFC 3903),
  :mod:`.pidf` (hardened XML, composition, transformations), :mod:`.policy` (pres-rules),
  :mod:`.winfo` (watcher info), :mod:`.xcapdiff` (RFC 5875) and :mod:`.agent` (what the
  proxy calls; it sends through the proxy's edge);
* :mod:`.store` -- the SQL tables (``presence_subscriptions``, ``presence_publications``)
  and the XCAP documents it reads;
* :mod:`.service` -- the gevent loop following the change feed (XCAP documents) and expiry.
"""
