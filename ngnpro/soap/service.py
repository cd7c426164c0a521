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
        session = runtime.sessionmaker()
        method = ctx.descriptor.name if ctx.descriptor is not None else "?"
        try:
            if cls.__requires_auth__:
                scope = authenticate(session, runtime.config, state.auth)
            else:
                scope = Scope()
            state.call = CallContext(session=session, scope=scope, config=runtime.config)
            result = super().call_wrapper(ctx, args)
            session.commit()
            return result
        except NGNProError as exc:
            session.rollback()
            log.info("%s %s: fault %s %s", cls.__port_namespace__.rpartition(":")[2], method, exc.code, exc.message)
            raise
        except SQLAlchemyError:
            session.rollback()
            log.exception("%s: database error", method)
            raise NGNProError(SERVER_ERROR, "Internal server error (database)") from None
        except Exception:
            session.rollback()
            log.exception("%s: unexpected error", method)
            raise NGNProError(SERVER_ERROR, "Internal server error") from None
        finally:
            session.close()
            state.call = None
