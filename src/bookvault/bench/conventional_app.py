"""The conventional Python stack, as most teams would write it: FastAPI with
fastapi-cache2 on Redis and slowapi, serving the same book endpoint from the
same catalog database. It is a reference to measure against, not part of
the system. Configured by BOOKVAULT_BENCH_DSN and BOOKVAULT_BENCH_REDIS_URL."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException, Request
from fastapi_cache import FastAPICache
from fastapi_cache.backends.redis import RedisBackend
from fastapi_cache.decorator import cache
from redis import asyncio as aioredis
from slowapi import Limiter, _rate_limit_exceeded_handler
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address

_SELECT_BOOK = """SELECT id, isbn, title, author, genre, published_year, total_copies,
       available_copies, rating::float8 AS rating, updated_at
  FROM books WHERE id = $1"""


def create_app() -> FastAPI:
    dsn = os.environ["BOOKVAULT_BENCH_DSN"]
    redis_url = os.environ["BOOKVAULT_BENCH_REDIS_URL"]
    limiter = Limiter(key_func=get_remote_address, storage_uri=redis_url, default_limits=["100000/second"])

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
        redis = aioredis.from_url(redis_url)
        FastAPICache.init(RedisBackend(redis), prefix="conventional")
        yield
        await app.state.pool.close()
        await redis.aclose()

    app = FastAPI(lifespan=lifespan)
    app.state.limiter = limiter
    # slowapi types its handler for its own exception only; Starlette dispatches by that type.
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]

    @app.get("/api/catalog/v1/books/{book_id}")
    @limiter.limit("100000/second")
    @cache(expire=60)
    async def get_book(request: Request, book_id: int) -> dict[str, Any]:
        row = await request.app.state.pool.fetchrow(_SELECT_BOOK, book_id)
        if row is None:
            raise HTTPException(status_code=404, detail="book not found")
        return dict(row)

    return app
