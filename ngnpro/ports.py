"""The service classes the server publishes (one line per class; B1/B2 add theirs here).

Order does not matter; every class sets its ``__port_namespace__``.
"""

from __future__ import annotations

from ngnpro.customer_port import CustomerPort

SERVICES: list[type] = [
    CustomerPort,
]
