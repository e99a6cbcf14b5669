"""The gateway's own auth endpoints, under `/api/auth/v1`.

    POST /api/auth/v1/logout        any valid token: revokes that token       -> 204
    POST /api/auth/v1/revocations   admin only, one of                        -> 201
         {"token_id": "<jti>", "expires_at"?: RFC 3339}
              refuse that token (until `expires_at`, else as long as any token may live)
         {"subject": "<member id>", "issued_before"?: RFC 3339, default now}
              refuse every token of that subject issued before that time

Both take effect on this process before the answer is sent, and on every other
gateway process as the announcement arrives (milliseconds; see `revocations`).
Errors are problem+json: 400 bad JSON, 401/403 as elsewhere, 404 unknown path,
405 other methods, 422 a body that says nothing usable, 503 when Redis cannot store
the revocation (nothing was revoked: retry).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from bookvault.auth import AuthError, TokenCodec
from bookvault.gateway.body import ClientDisconnected, RequestBody
from bookvault.gateway.exchange import GatewayProblem, Reply, problem_reply
from bookvault.gateway.headers import InboundHead
from bookvault.gateway.revocations import Revocation, RevocationList, RevocationStoreError
from bookvault.patterns.clock import Clock, SystemClock

__all__ = ["AUTH_PREFIX", "AuthEndpoints"]

AUTH_PREFIX = "/api/auth/v1/"
_LOGOUT = AUTH_PREFIX + "logout"
_REVOCATIONS = AUTH_PREFIX + "revocations"
_ALLOW_POST = {"Allow": "POST"}
_INVALID_TOKEN = {"WWW-Authenticate": 'Bearer realm="bookvault", error="invalid_token"'}
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="bookvault"'}
_BODY_LIMIT = 4096

AwareDatetime = Annotated[dt.datetime, msgspec.Meta(tz=True)]


class _RevocationRequest(msgspec.Struct, forbid_unknown_fields=True):
    token_id: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | None = None
    expires_at: AwareDatetime | None = None
    subject: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | None = None
    issued_before: AwareDatetime | None = None


_read_request = msgspec.json.Decoder(_RevocationRequest).decode
_encode = msgspec.json.Encoder().encode


def _rfc3339(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


class AuthEndpoints:
    """Answers requests under `AUTH_PREFIX`; never raises."""

    def __init__(
        self,
        codec: TokenCodec,
        revocations: RevocationList | None,
        *,
        max_ttl_s: float,
        clock: Clock | None = None,
    ) -> None:
        self._codec = codec
        self._revocations = revocations
        self._max_ttl_s = max_ttl_s
        self._clock = clock or SystemClock()

    async def __call__(self, method: str, path: str, head: InboundHead, body: RequestBody) -> Reply:
        try:
            if path not in (_LOGOUT, _REVOCATIONS):
                return problem_reply(404, "no such auth endpoint: POST /api/auth/v1/logout or /revocations")
            if method != "POST":
                return problem_reply(405, "use POST", _ALLOW_POST)
            if path == _LOGOUT:
                return await self._logout(head)
            return await self._revoke(head, body)
        except GatewayProblem as problem:
            return problem.reply()
        except ClientDisconnected:
            return problem_reply(400, "the request body was not completed")
        except RevocationStoreError:
            return problem_reply(
                503,
                "the revocation could not be stored; nothing was revoked, try again",
                {"Retry-After": "1"},
            )

    def _revocations_or_503(self) -> RevocationList:
        if self._revocations is None:
            raise GatewayProblem(503, "tokens cannot be revoked: the gateway has no Redis configured")
        return self._revocations

    async def _logout(self, head: InboundHead) -> Reply:
        token = _bearer(head.authorization)
        try:
            verified = self._codec.verify_token(token)
        except AuthError as exc:
            raise GatewayProblem(401, str(exc), headers=_INVALID_TOKEN) from None
        if verified.token_id is None:
            raise GatewayProblem(
                422, "this token has no id (jti) to revoke; revoke the member's tokens instead"
            )
        await self._revocations_or_503().revoke_token(verified.token_id, verified.expires_at)
        return Reply(204, [])

    async def _revoke(self, head: InboundHead, body: RequestBody) -> Reply:
        try:
            caller = self._codec.verify_header(head.authorization)
        except AuthError as exc:
            raise GatewayProblem(401, str(exc), headers=_INVALID_TOKEN) from None
        if caller is None:
            raise GatewayProblem(
                401, "this request needs 'Authorization: Bearer <token>'", headers=_CHALLENGE
            )
        if caller.role != "admin":
            raise GatewayProblem(
                403, "only admins may revoke tokens; members log out with POST /api/auth/v1/logout"
            )
        raw = await body.read(_BODY_LIMIT)
        try:
            request = _read_request(raw)
        except msgspec.ValidationError as exc:
            raise GatewayProblem(422, f"invalid revocation: {exc}") from None
        except msgspec.DecodeError:
            raise GatewayProblem(400, "the body must be a JSON object") from None
        revocations = self._revocations_or_503()
        now = self._clock.time()
        token_id, subject = request.token_id, request.subject
        if token_id is not None and subject is None:
            if request.issued_before is not None:
                raise GatewayProblem(422, "'issued_before' goes with 'subject', not 'token_id'")
            # Without the token's expiry, keep it as long as any token may live.
            expires = request.expires_at.timestamp() if request.expires_at else now + self._max_ttl_s
            return _created(await revocations.revoke_token(token_id, expires))
        if subject is not None and token_id is None:
            if request.expires_at is not None:
                raise GatewayProblem(422, "'expires_at' goes with 'token_id', not 'subject'")
            before = request.issued_before.timestamp() if request.issued_before else now
            if before > now:
                raise GatewayProblem(422, "'issued_before' must not be in the future")
            return _created(await revocations.revoke_subject(subject, before))
        raise GatewayProblem(422, "give exactly one of 'token_id' or 'subject'")


def _bearer(authorization: str | None) -> str:
    if authorization is None:
        raise GatewayProblem(401, "this request needs 'Authorization: Bearer <token>'", headers=_CHALLENGE)
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise GatewayProblem(401, "expected 'Authorization: Bearer <token>'", headers=_INVALID_TOKEN)
    return token.strip()


def _created(revocation: Revocation) -> Reply:
    if revocation.kind == "token":
        document = {"kind": "token", "token_id": revocation.id, "expires_at": _rfc3339(revocation.at)}
    else:
        document = {"kind": "subject", "subject": revocation.id, "issued_before": _rfc3339(revocation.at)}
    body = _encode(document)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode("ascii"))]
    return Reply(201, headers, body)
