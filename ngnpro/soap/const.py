"""Namespace URIs of the NGNPro wire format (API.md section 1.4) and of SOAP 1.1 itself."""

from __future__ import annotations

#: Namespace of every complex type (``xsi:type="ns4:SipAccount"``).
NS_TYPES = "urn:AGProjects:NGNPro"

#: Method-element namespaces, one per port: a call is told apart by (namespace, name).
NS_SIP = "urn:AGProjects:NGNPro:Sip"
NS_ENUM = "urn:AGProjects:NGNPro:Enum"
NS_DNS = "urn:AGProjects:NGNPro:Dns"
NS_CUSTOMER = "urn:AGProjects:NGNPro:Customer"
NS_RATING = "urn:AGProjects:NGNPro:Rating"
NS_VOICEMAIL = "urn:AGProjects:NGNPro:Voicemail"
NS_NETWORK = "urn:AGProjects:NGNPro:Network"
NS_PRESENCE = "urn:AGProjects:SoapSIMPLEProxy:Presence"
NS_PRESENCE_TYPES = "urn:AGProjects:SoapSIMPLEProxy"

#: port namespace -> port name used in the WSDL (``SipPort`` ...).
PORT_NAMES = {
    NS_SIP: "SipPort",
    NS_ENUM: "EnumPort",
    NS_DNS: "DnsPort",
    NS_CUSTOMER: "CustomerPort",
    NS_RATING: "RatingPort",
    NS_VOICEMAIL: "VoicemailPort",
    NS_NETWORK: "NetworkPort",
    NS_PRESENCE: "PresencePort",
}

NS_SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
NS_SOAP_ENC = "http://schemas.xmlsoap.org/soap/encoding/"
NS_XSD = "http://www.w3.org/2001/XMLSchema"
NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"
NS_WSDL = "http://schemas.xmlsoap.org/wsdl/"
NS_WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
