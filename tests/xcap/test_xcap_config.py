"""The XCAP keys of ``[ngnpro]``: defaults, and refusals that name the key."""

from __future__ import annotations

import pytest

from ngnpro.models.config import DEFAULTS, ConfigError, validate


def test_defaults() -> None:
    assert DEFAULTS["ngnpro"]["xcap_root"] == "/xcap-root/"
    assert DEFAULTS["ngnpro"]["xcap_max_document"] == 1048576


def test_root_gets_its_trailing_slash() -> None:
    assert validate({"ngnpro": {"xcap_root": "/services/xcap"}})["ngnpro"]["xcap_root"] == "/services/xcap/"


@pytest.mark.parametrize("value", ["", "/", "xcap-root/", "/ngnpro/xcap/", "/wsdl/", "/a b/", "/a//b/", 5])
def test_bad_roots_are_refused(value) -> None:
    with pytest.raises(ConfigError, match="ngnpro.xcap_root"):
        validate({"ngnpro": {"xcap_root": value}})


@pytest.mark.parametrize("value", [0, 1023, -1, "1M", True])
def test_bad_document_limits_are_refused(value) -> None:
    with pytest.raises(ConfigError, match="ngnpro.xcap_max_document"):
        validate({"ngnpro": {"xcap_max_document": value}})
