"""The API gateway: one public entry in front of catalog, borrowing and accounts.

    client ─► GatewayApp ─► EdgeAuth ─► BodyReader ─► [later stages] ─► UpstreamProxy ─► service

`create_app` is the factory the ASGI server calls; `Stage` is how further
behaviour (rate limiting, response caching, compression) joins the pipeline.
"""

from bookvault.gateway.app import GatewayApp, create_app
from bookvault.gateway.exchange import Exchange, GatewayProblem, Handler, Reply, Stage

__all__ = ["Exchange", "GatewayApp", "GatewayProblem", "Handler", "Reply", "Stage", "create_app"]
