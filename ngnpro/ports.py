"""The service classes the server publishes (one line per class; B1/B2 add theirs here).

Order does not matter; every class sets its ``__port_namespace__``.
"""

from __future__ import annotations

from ngnpro.customer_port import CustomerPort
from ngnpro.dns_port import DnsPort
from ngnpro.enum_port import EnumPort
from ngnpro.presence_port import PresencePort
from ngnpro.rating_port import RatingPort
from ngnpro.sip_accounts import SipAccountPort
from ngnpro.sip_aliases import SipAliasPort
from ngnpro.sip_calls import SipCallsPort
from ngnpro.sip_domains import SipDomainPort
from ngnpro.sip_prepaid import SipPrepaidPort
from ngnpro.sip_pstn import SipPstnService
from ngnpro.sip_settings import SipSettingsPort
from ngnpro.unimplemented import SERVICES as NOT_IMPLEMENTED_YET

SERVICES: list[type] = [
    CustomerPort,
    SipDomainPort, SipAccountPort, SipAliasPort, SipSettingsPort, SipPrepaidPort, SipCallsPort,
    RatingPort,
    EnumPort,
    DnsPort,
    SipPstnService,
    PresencePort,
    *NOT_IMPLEMENTED_YET,
]
