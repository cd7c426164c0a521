"""Helpers for the ngnpro logic tests, which call a port's plain functions (Session +
Scope + values) without SOAP: one transaction per call, exactly as the framework runs a
method — commit on success, roll back on any fault."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from ngnpro.soap.context import Scope
from ngnpro.soap.faults import NGNProError

#: The unscoped engine administrator.
ADMIN = Scope(admin=True)


def reseller(rid: int, subs: tuple[int, ...] = ()) -> Scope:
    """A reseller login (``resellerActive``) that sees itself and its sub-customers."""
    return Scope(reseller_id=rid, visible_ids=frozenset({rid, *subs}), login_id=rid, reseller_active=True)


def customer(cid: int, parent: int) -> Scope:
    """A plain customer login under reseller ``parent``."""
    return Scope(customer_id=cid, visible_ids=frozenset({cid}), login_id=cid, parent_reseller=parent)


def call(factory: Callable, fn: Callable, *args: Any, **kw: Any) -> Any:
    with factory() as s:
        try:
            result = fn(s, *args, **kw)
        except Exception:
            s.rollback()
            raise
        s.commit()
        return result


def code_of(factory: Callable, fn: Callable, *args: Any, **kw: Any) -> int:
    """The NGNPro fault code ``fn`` answers (the call must fault)."""
    with pytest.raises(NGNProError) as info:
        call(factory, fn, *args, **kw)
    return info.value.code


def count(factory: Callable, model: Any) -> int:
    with factory() as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()
