"""Hostile requests on every REST/HTTP route of the gateway's Open Inference Protocol, on the real stack.

Every route gets undecodable bodies, an empty one, seeded random JSON, structurally wrong inference
headers and lying binary lengths. Every answer must come in time with a status that says what was wrong
(4xx, or 501/503 where documented) — never 500 — and the gateway must still be ready afterwards.
"""

from __future__ import annotations

import json
import random

import aiohttp
import pytest

from services.gateway.app import Gateway

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.integration, pytest.mark.timeout(300)]

ANSWER_LIMIT_S = 5.0
MODEL = "placeholder"
ROUTES = [
    ("GET", "/v2"),
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("GET", f"/v2/models/{MODEL}"),
    ("GET", "/v2/models/no-such-model"),
    ("GET", f"/v2/models/{MODEL}/versions/1/ready"),
    ("GET", f"/v2/models/{MODEL}/config"),
    ("GET", f"/v2/models/{MODEL}/stats"),
    ("GET", "/v2/models/stats"),
    ("POST", "/v2/repository/index"),
    ("POST", f"/v2/repository/models/{MODEL}/load"),
    ("POST", f"/v2/repository/models/{MODEL}/unload"),
    ("POST", f"/v2/models/{MODEL}/infer"),
    ("POST", f"/v2/models/{MODEL}/versions/1/infer"),
    ("POST", "/v2/models/no-such-model/infer"),
    ("POST", f"/v2/models/{MODEL}/versions/99/infer"),
    ("GET", "/v2/trace/setting"),
    ("POST", "/v2/trace/setting"),
    ("GET", "/v2/logging"),
    ("POST", "/v2/logging"),
    ("GET", "/v2/systemsharedmemory/status"),
    ("POST", "/v2/systemsharedmemory/region/r/register"),
    ("POST", "/v2/cudasharedmemory/unregister"),
]


def _random_json(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 2**70, 1e308, -0.5])
    if kind == 3:
        return rng.choice(["", "x" * 5000, "\x00", "FP32", "IMAGE", "binary_data_size"])
    if kind == 4:
        return rng.random()
    if kind == 5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["id", "inputs", "outputs", "parameters", "name", "shape", "datatype", "data", "binary_data_size"]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randrange(5))}


def _inference_headers(rng: random.Random) -> list[object]:
    good = {"name": "IMAGE", "datatype": "FP32", "shape": [1, 1, 128, 128]}
    return [
        {"inputs": [{**good, "data": [0.5] * 10}]},
        {"inputs": [{**good, "data": "not numbers"}]},
        {"inputs": [{**good, "shape": [1, 1, 2**45, 2]}]},
        {"inputs": [{**good, "parameters": {"binary_data_size": 10**9}}]},
        {"inputs": [{**good, "datatype": "BYTES", "data": ["a"]}]},
        {"inputs": [good], "parameters": {"study_instance_uid": {"nested": 1}}},
        {"inputs": [{**good, "data": [float("nan")] * 16384}]},
        {"inputs": [{**good, "data": [0.1] * 16384}], "parameters": {"age_years": "old", "sex": "X"}},
        {"inputs": [{**good, "data": [0.1] * 16384}], "outputs": [{"name": 5}]},
        *(_random_json(rng) for _ in range(4)),
    ]


async def _check(session: aiohttp.ClientSession, method: str, url: str, **kwargs: object) -> str | None:
    async with session.request(method, url, timeout=aiohttp.ClientTimeout(total=ANSWER_LIMIT_S), **kwargs) as resp:
        body = await resp.read()
        if resp.status >= 500 and resp.status not in (501, 503, 504):
            return f"{method} {url}: {resp.status} {body[:200]!r}"
        if resp.status >= 400:
            error = json.loads(body).get("error", "")
            if not error or "internal" in error.lower():
                return f"{method} {url}: {resp.status} without a reason: {body[:200]!r}"
    return None


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
async def test_hostile_http_requests_get_a_proper_answer_in_time(fuzz_gateway: Gateway, method: str, path: str) -> None:
    assert fuzz_gateway.rest is not None
    url = f"http://127.0.0.1:{fuzz_gateway.rest.port}{path}"
    rng = random.Random(path)
    problems: list[str] = []
    async with aiohttp.ClientSession() as session:
        bodies: list[bytes] = [b"", b"\xff\xfe{", b"{" * 10_000, json.dumps(_random_json(rng)).encode()]
        bodies += [json.dumps(h).encode() for h in _inference_headers(rng)]
        for body in bodies:
            problem = await _check(session, method, url, data=body)
            problems += [problem] if problem else []
        for length in ("-1", "abc", str(10**12), "3"):
            problem = await _check(
                session, method, url, data=b'{"inputs": []}xyz', headers={"Inference-Header-Content-Length": length}
            )
            problems += [problem] if problem else []
    assert problems == []


async def test_the_rest_endpoint_still_serves(fuzz_gateway: Gateway) -> None:
    assert fuzz_gateway.rest is not None
    url = f"http://127.0.0.1:{fuzz_gateway.rest.port}/v2/health/ready"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200
