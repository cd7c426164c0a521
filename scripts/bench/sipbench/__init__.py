"""The pieces of ``scripts/bench/sipproxy``: our proxy against Kamailio, same run.

``common`` (constants, users, CPU accounting, small SIP helpers), ``load`` (sipp runs, the
rate climb, the 503 count), ``servers`` (Kamailio in its set-ups, our proxy, enumdns,
FreeRADIUS), ``run`` (the set-ups and one set-up's tests), ``report`` (the BENCHMARKS.md
text, written by the script only).  Split so that each stays readable on its own; the
script itself only parses the arguments and runs the rounds.
"""
