"""The presence benchmark (scripts/bench/presence): PUBLISH-to-NOTIFY latency and NOTIFYs
per second of our presence agent beside Kamailio's, in the same run with the same load.

``ua`` is the load generator, ``measure`` a system's climb, ``servers`` the two agents
provisioned alike, ``report`` the BENCHMARKS.md section.
"""
