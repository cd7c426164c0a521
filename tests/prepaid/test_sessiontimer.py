"""RFC 4028 session timers as the proxy applies them (sipproxy.dialog.sessiontimer), sans-I/O."""

from __future__ import annotations

from sipproxy.dialog.sessiontimer import (
    SessionExpires,
    on_answer,
    on_invite,
    parse_min_se,
    parse_session_expires,
    supports_timer,
)


def test_headers_are_read_as_the_grammar_says():
    assert parse_session_expires("1800;refresher=UAC") == SessionExpires(1800, "uac")
    assert parse_session_expires(" 90 ") == SessionExpires(90, "")
    assert parse_session_expires("90;refresher=proxy") == SessionExpires(90, "")
    for bad in (None, "", "soon", "-5", "1e3", "9" * 11):
        assert parse_session_expires(bad) is None
    assert parse_min_se("120;x=y") == 120 and parse_min_se("x") is None
    assert supports_timer(["100rel, Timer"]) and not supports_timer(["100rel", "path"])


def test_an_invite_below_our_min_se_is_refused_with_ours():
    offer = on_invite("60", None, ours=0, our_min_se=90)
    assert offer.refuse_min_se == 90
    assert on_invite("60", "120", ours=0, our_min_se=90).refuse_min_se == 120  # the caller's own floor


def test_an_invite_without_session_expires_gets_ours_when_configured():
    assert on_invite(None, None, ours=0, our_min_se=90).headers == ()
    assert on_invite(None, None, ours=1800, our_min_se=90).headers == (("Session-Expires", "1800"),)
    # an absent Min-SE means 90 s: inserted only when ours is above that
    assert on_invite(None, None, ours=1800, our_min_se=120).headers == (("Session-Expires", "1800"),
                                                                        ("Min-SE", "120"))
    # the caller's Min-SE above our interval wins
    assert dict(on_invite(None, "3600", ours=1800, our_min_se=90).headers) == {"Session-Expires": "3600"}
    # a caller's Session-Expires is kept; a Min-SE below ours is raised to ours
    assert on_invite("1800", "60", ours=600, our_min_se=90).headers == (("Min-SE", "90"),)
    assert on_invite("1800", None, ours=600, our_min_se=90).headers == ()
    assert on_invite("1800", "90", ours=600, our_min_se=90).headers == ()


def test_the_answer_settles_the_interval():
    # the callee took session timers up: its interval
    assert on_answer("1800", ["timer"], "900;refresher=uas") == (900, ())
    # the callee did not, the caller can refresh: the proxy asks the caller to
    assert on_answer("1800", ["timer"], None) == (1800, (("Session-Expires", "1800;refresher=uac"),
                                                         ("Require", "timer")))
    # neither party does session timers: none
    assert on_answer("1800", [], None) == (0, ())
    assert on_answer(None, ["timer"], None) == (0, ())
