"""``PortService``: the base class of every NGNPro port's spyne service classes.

It declares which port (method namespace) a class serves and wraps every call in the
framework's rules: authenticate the ``auth`` header, one database transaction per call
(commit after success, roll back on any fault), and no traceback to the client -- an
unexpected exception is logged and answered as fault 9000.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from spyne.service import ServiceBase
from sqlalchemy.exc import SQLAlchemyError

from ngnpro.recycle import note_failure

from .auth import authenticate
from .context import CallContext, RequestState, Scope
from .faults import SERVER_ERROR, NGNProError

log = logging.getLogger("ngnpro.soap")


class PortService(ServiceBase):
    """Subclass it, set ``__port_namespace__`` and declare methods with spyne ``@rpc``."""

    #: the method namespace of the port this class serves, e.g. ``NS_SIP``
    __port_namespace__: ClassVar[str] = ""
    #: False for ports that authenticate by parameters (PresencePort)
    __requires_auth__: ClassVar[bool] = True

    @classmethod
    def call_wrapper(cls, ctx: Any, args: Any = None) -> Any:
        state = ctx.udc
        if not isinstance(state, RequestState):
            raise NGNProError(SERVER_ERROR, "Internal server error")
        runtime = state.runtime
        method = ctx.descriptor.name if ctx.descriptor is not None else "?"
        conn = runtime.connections.take()
        reusable = False
        call = state.call = CallContext(conn, None, runtime.config, runtime.write_lock)
        try:
            conn.begin()
            if cls.__requires_auth__:
                call.scope = authenticate(lambda: call.session, runtime.config, state.auth)
            else:
                call.scope = Scope()
            result = super().call_wrapper(ctx, args)
            if call.session_open:
                call.session.commit()  # flushes into the call's transaction
            conn.commit()
            reusable = True
            return result
        except NGNProError as exc:
            reusable = _rollback(conn)
            log.info("%s %s: fault %s %s", cls.__port_namespace__.rpartition(":")[2], method, exc.code, exc.message)
            raise
        except SQLAlchemyError:
            _rollback(conn)
            log.exception("%s: database error", method)
            raise NGNProError(SERVER_ERROR, "Internal server error (database)") from None
        except Exception as exc:
            _rollback(conn)
            if not note_failure(exc, method):
                log.exception("%s: unexpected error", method)
            raise NGNProError(SERVER_ERROR, "Internal server error") from None
        finally:
            runtime.write_lock.release()  # after the commit or rollback
            if call.session_open:
                call.session.close()
            runtime.connections.give(conn, reusable)
            state.call = None


def _rollback(conn: Any) -> bool:
    """Roll the call back; False when even that failed (the connection is then closed)."""
    try:
        conn.rollback()
    except SQLAlchemyError:
        log.warning("rollback failed", exc_info=True)
        return False
    return True
