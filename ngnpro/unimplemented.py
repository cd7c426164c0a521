"""Ports and methods that answer fault 9999 "not implemented yet" until their issue comes:
VoicemailPort, NetworkPort, and SipPort's SIP/media traces and media sessions
(RatingPort is :mod:`ngnpro.rating_port`, the call lists and statistics :mod:`ngnpro.sip_calls`,
PresencePort :mod:`ngnpro.presence_port`).

They are declared with their real parameter and return types (API.md 3.1, 3.5-3.7, 4) so
the WSDL already publishes the final contract and a client gets a clean, coded fault
instead of "unknown method".
"""

from __future__ import annotations

from spyne import rpc

from ngnpro.sip_types import SipId
from ngnpro.soap import (
    NS_NETWORK,
    NS_SIP,
    NS_TYPES,
    NS_VOICEMAIL,
)
from ngnpro.soap.faults import not_implemented
from ngnpro.soap.service import PortService
from ngnpro.soap.types import ComplexModel, Integer, Unicode


def _struct(name: str, members: list[tuple[str, object]], ns: str = NS_TYPES) -> type:
    return type(name, (ComplexModel,), {"__namespace__": ns, "__type_name__": name, "_type_info": members})


SipTraceFilter = _struct("SipTraceFilter", [("nodeIp", Unicode), ("callId", Unicode), ("fromTag", Unicode),
                                            ("toTag", Unicode)])
MediaTraceFilter = _struct("MediaTraceFilter", [("nodeIp", Unicode), ("callId", Unicode), ("fromTag", Unicode),
                                                ("toTag", Unicode)])
VoicemailOptions = _struct("VoicemailOptions", [("delete", Integer)])
VoicemailAccount = _struct("VoicemailAccount", [
    ("sipId", SipId), ("mailbox", Unicode), ("name", Unicode), ("password", Unicode), ("email", Unicode),
    ("info", Unicode), ("options", VoicemailOptions),
])


class SipPortNotImplemented(PortService):
    __port_namespace__ = NS_SIP

    @rpc(SipTraceFilter, _returns=Unicode)
    def getSipTrace(ctx, filter):  # noqa: N805, A002
        raise not_implemented("SipPort.getSipTrace")

    @rpc(MediaTraceFilter, _returns=Unicode)
    def getMediaTrace(ctx, filter):  # noqa: N805, A002
        raise not_implemented("SipPort.getMediaTrace")

    @rpc(_returns=Unicode)
    def getMediaSummary(ctx):  # noqa: N805
        raise not_implemented("SipPort.getMediaSummary")

    @rpc(_returns=Unicode)
    def getMediaSessions(ctx):  # noqa: N805
        raise not_implemented("SipPort.getMediaSessions")


class VoicemailPort(PortService):
    __port_namespace__ = NS_VOICEMAIL

    @rpc(VoicemailAccount)
    def addAccount(ctx, account):  # noqa: N805
        raise not_implemented("VoicemailPort.addAccount")

    @rpc(VoicemailAccount)
    def updateAccount(ctx, account):  # noqa: N805
        raise not_implemented("VoicemailPort.updateAccount")

    @rpc(SipId)
    def deleteAccount(ctx, sipId):  # noqa: N805
        raise not_implemented("VoicemailPort.deleteAccount")

    @rpc(SipId, _returns=VoicemailAccount)
    def getAccount(ctx, sipId):  # noqa: N805
        raise not_implemented("VoicemailPort.getAccount")

    @rpc(SipId, Unicode)
    def setAnnouncement(ctx, sipId, message):  # noqa: N805
        raise not_implemented("VoicemailPort.setAnnouncement")


class NetworkPort(PortService):
    __port_namespace__ = NS_NETWORK

    @rpc(_returns=Unicode)
    def getStatus(ctx):  # noqa: N805
        raise not_implemented("NetworkPort.getStatus")

    @rpc(_returns=Unicode)
    def getStatistics(ctx):  # noqa: N805
        raise not_implemented("NetworkPort.getStatistics")


SERVICES = [SipPortNotImplemented, VoicemailPort, NetworkPort]
