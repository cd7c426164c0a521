"""The routing guide's handle-incoming-pstn example: calls from a carrier's gateway.

Copy to ``siteconfig/handle_incoming_pstn.py`` and list your carriers' gateway addresses.
"""

#: gateway address -> carrier name
CARRIERS = {"201.176.11.13": "Carrier 1"}


def hook(request, api):
    carrier = CARRIERS.get(api.source_ip)
    if carrier is None:
        return
    api.log(f"call from {carrier}")
    api.set_domain(api.server_domain)
    # the guide prefixes "+" here; enum_lookup normalises every form of a number itself
    # (31..., 0031..., 0..., +31...: docs/routing.md "Numbers")
    api.set_billing_party(api.source_ip)
    if not api.enum_lookup():
        api.reply(404, "User not found")
    elif not api.is_local():
        api.reply(403, "Invalid destination")
