"""MSRP for IM and file transfer: the message layer of RFC 4975 and the relay of RFC 4976.

The message layer (uri, message, parser, chunking) is pure code without sockets, shared by
the relay and by anything else that speaks MSRP.  The relay is a service of its own,
``python -m mediaproxy.msrp --config F``, reading the ``[msrprelay]`` section of the
platform's config file; docs/msrp.md describes it.
"""
