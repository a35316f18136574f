"""Baselines for the HTTP side, as plain as FastAPI and asyncpg make them:

- GET /check/{customer_id}/{feature}: a static bearer-token compare and one indexed SELECT;
- POST /hook: a Stripe-style HMAC-SHA256 signature check, then an inbox insert and a row update in one
  transaction.

    python -m benchmarks.baselines.bare_api PORT DATABASE_URL TOKEN WEBHOOK_SECRET
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import time
from contextlib import asynccontextmanager

import asyncpg
import uvicorn
from fastapi import FastAPI, Header, HTTPException, Request

PORT, DATABASE_URL, TOKEN, SECRET = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
pool: asyncpg.Pool


@asynccontextmanager
async def lifespan(_: FastAPI):
    global pool
    pool = await asyncpg.create_pool(DATABASE_URL, min_size=4, max_size=10)
    yield
    await pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/check/{customer_id}/{feature}")
async def check(customer_id: str, feature: str, authorization: str = Header("")) -> dict:
    if not hmac.compare_digest(authorization, f"Bearer {TOKEN}"):
        raise HTTPException(401)
    ends = await pool.fetchval(
        "SELECT max(expires_at) FROM entitlements WHERE tenant_id = 'default' AND customer_id = $1 AND feature = $2",
        customer_id,
        feature,
    )
    return {"allowed": ends is not None, "expires_at": ends}


@app.post("/hook")
async def hook(request: Request, stripe_signature: str = Header("")) -> dict:
    body = await request.body()
    parts = dict(part.split("=", 1) for part in stripe_signature.split(","))
    expected = hmac.new(SECRET.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, parts["v1"]) or abs(time.time() - int(parts["t"])) > 300:
        raise HTTPException(400)
    event = json.loads(body)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO bench_inbox (event_id, payload) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            event["id"],
            body.decode(),
        )
        await conn.execute("UPDATE bench_rows SET status = 'succeeded' WHERE id = $1", event["data"]["object"]["id"])
    return {"received": True}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT)  # uvicorn's defaults, access log included, as paywarden logs
