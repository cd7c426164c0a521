"""The routing guide's PBX transit example: a trusted peer may go anywhere through us.

Copy to ``siteconfig/handle_incoming_pstn.py``; the PBXs are the trusted peers provisioned
through NGNPro (TrustedPeer), known by their source address.
"""


def hook(request, api):
    if not api.from_trusted_peer:
        return
    api.set_billing_party(api.source_ip)
    if api.number() is not None:  # a number in any of the guide's forms
        api.set_domain(api.server_domain)
        if not api.enum_lookup():
            api.log("ENUM number not found. PSTN transit")
            api.pstn_transit()
            return
    if not api.is_local():
        api.log(f"transit call from trusted peer {api.source_ip}")
        api.send_out()
