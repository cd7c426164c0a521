"""The shared data layer: every table of the platform, the configuration contract, the
database connection and change propagation.  Imports only SQLAlchemy (never spyne), so the
data-plane services can use it without the provisioning server's dependencies."""

from .base import Base, utcnow
from .changes import ChangeFeed, ChangeLogEntry, record_change
from .config import Config, ConfigError, load_config
from .customer import Customer, CustomerProperty
from .database import make_engine, open_database, session_factory, upgrade
from .e164 import EnumMapping, EnumNumber, EnumRange
from .lcr import Carrier, Gateway, GatewayRule, Route
from .prepared import Compiled, Prepared, datetime_bind, supports_returning
from .presence import PresencePublication, PresenceSubscription
from .rating import RatingEntityProfile, RatingRate
from .runtime import AccountingRecord, Dialog, Location, MediaSession, contact_key
from .sip import (
    AcceptRule,
    BarringPrefix,
    CallDiversion,
    CreditEntry,
    EmergencyMapping,
    PhonebookEntry,
    PrepaidCard,
    RejectMember,
    SipAccount,
    SipAccountAcl,
    SipAccountGroup,
    SipAccountProperty,
    SipAlias,
    SipDomain,
    SipDomainAcl,
    TrustedPeer,
)
from .xcap import XcapDocument
from .zones import DnsRecord, DnsZone

__all__ = [
    "AcceptRule", "AccountingRecord", "BarringPrefix", "Base", "CallDiversion", "Carrier",
    "ChangeFeed", "ChangeLogEntry", "Compiled", "Config", "ConfigError", "CreditEntry", "Customer",
    "CustomerProperty", "Dialog", "DnsRecord", "DnsZone", "EmergencyMapping", "EnumMapping",
    "EnumNumber", "EnumRange", "Gateway", "GatewayRule", "Location", "MediaSession",
    "PhonebookEntry", "PrepaidCard", "Prepared", "PresencePublication", "PresenceSubscription",
    "RatingEntityProfile", "RatingRate", "RejectMember", "Route", "SipAccount", "SipAccountAcl",
    "SipAccountGroup", "SipAccountProperty", "SipAlias", "SipDomain", "SipDomainAcl",
    "TrustedPeer", "XcapDocument",
    "contact_key", "datetime_bind", "load_config", "make_engine", "open_database", "record_change",
    "session_factory", "supports_returning", "upgrade", "utcnow",
]
