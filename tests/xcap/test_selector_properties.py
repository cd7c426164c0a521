"""Property tests of the XCAP decoders (hypothesis, a small budget; the long runs are
``scripts/fuzz xcap``): node selectors built from RFC 4825's grammar parse, and their steps
written back parse to the same steps; random selectors and bindings raise only
``SelectorError``; applied to a document, GET, PUT and DELETE raise only the server's own
errors, a GET's element put back is an idempotent replacement (``fuzz/xcap.py``'s
properties, which these call)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz import xcap as harness
from fuzz._common import seeds
from ngnpro.xcap import selector

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

names = st.sampled_from(["resource-lists", "list", "entry", "display-name", "*", "r:list", "x:tag", "r:entry"])
values = st.text(alphabet=st.sampled_from("ab/@[]=*:~ \"'&;#x1\u00e9<"), max_size=8)


@st.composite
def steps(draw) -> str:
    name = draw(names)
    out = name
    if draw(st.booleans()):
        out += f"[{draw(st.integers(0, 4))}]"
    if draw(st.booleans()):
        attr = draw(st.sampled_from(["name", "uri", "x:tag"]))
        value = draw(values).replace("&", "&amp;").replace("<", "&lt;")
        quote = "'" if '"' in value else '"'
        if quote in value:
            value = value.replace("'", "&apos;")
        out += f"[@{attr}={quote}{value}{quote}]"
    return out


@st.composite
def selectors(draw) -> str:
    parts = draw(st.lists(steps(), min_size=1, max_size=5))
    terminal = draw(st.sampled_from(["", "/@name", "/@x:tag", "/namespace::*"]))
    return ("/" if draw(st.booleans()) else "") + "/".join(parts) + terminal


BINDINGS = {"r": harness.RL_NS, "x": "urn:x"}


@SETTINGS
@given(selectors())
def test_grammar_selectors_parse_and_round_trip(text: str) -> None:
    sel = selector.parse(text, harness.RL_NS, BINDINGS)
    written = "/".join(s.text for s in sel.steps)
    assert selector.parse(written, harness.RL_NS, BINDINGS).steps == sel.steps
    assert (sel.attribute is not None) == text.endswith(("/@name", "/@x:tag"))
    assert sel.is_namespace == text.endswith("/namespace::*")
    assert all(s.name is None or s.name[0] in (harness.RL_NS, "urn:x") for s in sel.steps)


@SETTINGS
@given(st.text(alphabet=st.sampled_from("abr:/@[]=*\"'&;()xmlns 1\x00\u00e9~"), max_size=60),
       st.text(alphabet=st.sampled_from("xmlns()=:ab/ \x01{}"), max_size=40))
def test_random_selectors_raise_only_selector_error(text: str, query: str) -> None:
    try:
        bindings = selector.parse_bindings(query)
    except selector.SelectorError:
        bindings = {}
    try:
        selector.parse(text, harness.RL_NS, bindings)
    except selector.SelectorError:
        pass


@SETTINGS
@given(selectors(), st.sampled_from(seeds("xcap")), st.sampled_from([b"", b'<entry uri="sip:z@example.com"/>',
                                                                        b"v&amp;w", b"<list/><list/>"]))
def test_operations_on_documents(text: str, seed: bytes, body: bytes) -> None:
    doc = seed.partition(b"\n")[2].partition(b"\x00")[0]
    query = "xmlns(r=urn:ietf:params:xml:ns:resource-lists)xmlns(x=urn:x)"
    harness.TestOneInput(f"{text}?{query}\n".encode() + doc + (b"\x00" + body if body else b""))


def test_names_lxml_refuses_are_selector_errors() -> None:
    """fuzz xcap: a control character in an ``xmlns()`` namespace reached lxml, whose
    ``ValueError`` would have been a 500 instead of a 400."""
    import pytest

    with pytest.raises(selector.SelectorError):
        selector.parse_bindings("xmlns(p=urn:\x01x)")
    for text in ("a/b[@p:c=\"d\"]", "p:a"):
        with pytest.raises(selector.SelectorError):
            selector.parse(text, harness.RL_NS, {"p": "urn:\x01x"})
