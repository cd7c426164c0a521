"""Coverage-guided fuzzing of every decoder that reads bytes from the network.

One module per target (``fuzz/<target>.py``), each with ``TestOneInput(data: bytes)`` that
asserts the decoder's properties and raises on a violation:

* the decoder returns a value or raises the module's own parse error, nothing else;
* it never hangs: every input runs under a time bound (`fuzz._common.time_bound`);
* where a writer exists, parse -> write -> parse gives the same value.

Seeds are in ``fuzz/corpus/<target>/``; ``scripts/fuzz TARGET --seconds N`` runs one target
(with atheris/libFuzzer when it is installed, else with a coverage-less mutation loop).
See docs/reliability.md.
"""

TARGETS = (
    "sip_message",
    "sip_grammar",
    "sdp",
    "digest",
    "framing",
    "enumdns_query",
    "ngnpro_soap",
    "mediaproxy_control",
    "xcap",
    "msrp_message",
)
