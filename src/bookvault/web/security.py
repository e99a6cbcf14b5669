"""Who is calling: every service verifies the bearer token itself (the gateway
checks it too), so a service reached directly is no weaker than through the gateway."""

from __future__ import annotations

from starlette.requests import Request

from bookvault.auth import AuthError, Principal, TokenCodec
from bookvault.web.problems import HTTPProblem

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="bookvault"'}


def principal_of(request: Request) -> Principal | None:
    """The verified caller, or None for an anonymous request. Bad token → 401."""
    codec: TokenCodec = request.app.state.token_codec
    try:
        return codec.verify_header(request.headers.get("authorization"))
    except AuthError as exc:
        raise HTTPProblem(401, str(exc), headers=_CHALLENGE) from None


def require_principal(request: Request, *roles: str) -> Principal:
    """The verified caller; 401 when anonymous, 403 when its role is not in `roles`."""
    principal = principal_of(request)
    if principal is None:
        raise HTTPProblem(401, "this endpoint needs 'Authorization: Bearer <token>'", headers=_CHALLENGE)
    if roles and principal.role not in roles:
        raise HTTPProblem(403, f"this endpoint is for {' or '.join(roles)} callers")
    return principal


def require_member_access(request: Request, member_id: int) -> Principal:
    """The caller, if it may see `member_id`'s data: itself, an admin or a service."""
    principal = require_principal(request)
    if not principal.may_act_for(member_id):
        raise HTTPProblem(403, "members may only access their own data")
    return principal
