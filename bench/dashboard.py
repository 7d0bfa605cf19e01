"""bench/dashboard: the board's pages with a full ledger — server time and browser load time per page.

Setup on the real stack (Kafka, PostgreSQL; the stack must be up, ``source`` your env file first): a scratch
database with every migration; 100,000 prediction events (v1 stable, v2 canary) and 20,000 reads sent through
Kafka and stored by the real ledger writer; the real monitor runner judging ``--judged-blocks`` blocks of
``--block`` predictions per target (drift with its Evidently report, calibration, bias, performance findings;
judging all 100,000 takes most of an hour on a shared 2-core machine), whose findings are then copied, with
windows shifted back in time, until the findings table holds what the whole ledger gives at the stack's default
block of 500 (``--findings``, 4 per block: 800); governance in this process on that database with both
versions registered; the monitor query API and the dashboard served in this process.

Measured, median over ``--runs``:

- server time of each page (the HTTP answer, signed in; the version page also reports the time its API
  queries took, from its ``Server-Timing`` header);
- in Debian's Chromium (Playwright): first contentful paint and the load event of each page.

Targets: every page under 1 s to first paint; the version page's queries under 300 ms.

Run: ``source /work/envs/<you>.sh; .venv/bin/python -m bench.dashboard [--predictions 100000] [--reads 20000]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory

import aiohttp
import asyncpg

from bench.pipeline import (
    Topics,
    delete_topics,
    make_topics,
    prediction_event,
    produce_all,
    read_event,
    wait_committed,
    writer_process,
)
from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from radguard.governance.v1 import governance_pb2 as pb
from services.cli.governance_commands import version_from_repo
from stack.settings import REPO_ROOT, load_stack_settings
from tests.e2e.dashboard_harness import chromium, monitor_pass, serve_dashboard
from tests.integration.conftest import StackEndpoints, scratch_database
from tests.integration.governance_api.conftest import MIGRATION_DIRS, running_governance

MODEL = "chest_nodule"
PAGES = {
    "inventory": "/",
    "version": f"/models/{MODEL}/versions/2",
    "rollout": f"/models/{MODEL}/rollout",
    "findings": "/findings",
    "audit": "/audit",
}


def traffic(predictions: int, reads: int, topics: Topics, seed: int) -> list[tuple[str, bytes, bytes]]:
    """Prediction events (a fifth on the canary v2) and reads of the first ``reads`` of them."""
    rng = random.Random(seed)
    records: list[tuple[str, bytes, bytes]] = []
    read_ids: list[str] = []
    for i in range(predictions):
        canary = i % 5 == 0
        key, value, prediction_id = prediction_event(rng, "2" if canary else "1")
        if canary:
            event = events_pb2.PredictionEvent.FromString(value)
            event.arm = common_pb2.ARM_CANARY
            value = event.SerializeToString()
        records.append((topics.predictions, key, value))
        if len(read_ids) < reads and rng.random() < max(reads / predictions, 0.0) * 1.2:
            read_ids.append(prediction_id)
    for prediction_id in read_ids:
        key, value = read_event(rng, prediction_id)
        records.append((topics.reads, key, value))
    return records


async def fill_findings(dsn: str, wanted: int) -> int:
    """Copy the judged findings (new ids, windows and creation shifted back an hour per round) up to ``wanted``."""
    con = await asyncpg.connect(dsn)
    try:
        have = int(await con.fetchval("select count(*) from monitor_findings"))
        rounds = 0
        while have and have < wanted:
            rounds += 1
            await con.execute(
                "insert into monitor_findings (finding_id, kind, model_name, model_version, arm, window_start, "
                "window_end, window_count, window_labelled, severity, summary, statistics, spec_ref, report_uri, "
                "created_at) select gen_random_uuid(), kind, model_name, model_version, arm, "
                "window_start - make_interval(hours => $1), window_end - make_interval(hours => $1), window_count, "
                "window_labelled, severity, summary, statistics, spec_ref, report_uri, "
                "created_at - make_interval(hours => $1) from monitor_findings "
                "where finding_id in (select finding_id from monitor_findings order by created_at desc limit $2)",
                rounds,
                min(wanted - have, 64),
            )
            have = int(await con.fetchval("select count(*) from monitor_findings"))
        await con.execute("analyze monitor_findings")
        return have
    finally:
        await con.close()


async def seed_governance(gov: object, token: str) -> None:
    stub = gov.stub  # type: ignore[attr-defined]
    md = (("authorization", f"Bearer {token}"),)
    for n in (1, 2):
        message = version_from_repo(REPO_ROOT / "model_repo", MODEL, n, policy="fast-test")
        await stub.RegisterVersion(pb.RegisterVersionRequest(version=message, request_id=uuid.uuid4().hex), metadata=md)
        request = pb.RequestTransitionRequest(
            model=message.ref, to_state=pb.LIFECYCLE_STATE_VALIDATED, reason="bench", request_id=uuid.uuid4().hex
        )
        await stub.RequestTransition(request, metadata=md)


async def server_times(url: str, token: str, runs: int) -> dict[str, tuple[float, float | None]]:
    """Median milliseconds of each page's HTTP answer (and of the version page's API queries)."""
    out: dict[str, tuple[float, float | None]] = {}
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.post(f"{url}/signin", data={"token": token, "next": "/"}) as reply:
            assert reply.status == 200, await reply.text()
        for name, path in PAGES.items():
            totals, queries = [], []
            for _ in range(runs):
                start = time.perf_counter()
                async with http.get(url + path) as reply:
                    await reply.read()
                    assert reply.status == 200, (name, reply.status)
                    timing = reply.headers.get("Server-Timing", "")
                totals.append((time.perf_counter() - start) * 1000)
                if "api;dur=" in timing:
                    queries.append(float(timing.split("api;dur=")[1].split(",")[0]))
            out[name] = (statistics.median(totals), statistics.median(queries) if queries else None)
    return out


async def browser_times(url: str, token: str, runs: int) -> dict[str, tuple[float, float]]:
    """Median first contentful paint and load event (ms after navigation start) of each page in Chromium."""
    out: dict[str, tuple[float, float]] = {}
    async with chromium() as browser:
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(f"{url}/signin")
        await page.fill("input[name=token]", token)
        await page.click("button[type=submit]")
        await page.wait_for_selector("[data-testid=whoami]")
        await page.goto(url + "/static/plotly.min.js")  # a board member's browser has it cached after the first page
        for name, path in PAGES.items():
            paints, loads = [], []
            for _ in range(runs):
                await page.goto("about:blank")
                await page.goto(url + path, wait_until="load")
                # The paint entry can be recorded after the load event: wait for it (2 s at most; -1 if none).
                timing = await page.evaluate(
                    """() => new Promise(resolve => {
                         const done = () => {
                           const p = performance.getEntriesByName('first-contentful-paint')[0];
                           const n = performance.getEntriesByType('navigation')[0];
                           resolve([p ? p.startTime : -1, n.loadEventEnd]);
                         };
                         new PerformanceObserver((list, observer) => {
                           if (list.getEntriesByName('first-contentful-paint').length) {
                             observer.disconnect();
                             done();
                           }
                         }).observe({type: 'paint', buffered: true});
                         setTimeout(done, 2000);
                       })"""
                )
                paints.append(float(timing[0]))
                loads.append(float(timing[1]))
            out[name] = (statistics.median(paints), statistics.median(loads))
        await context.close()
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", type=int, default=100_000)
    parser.add_argument("--reads", type=int, default=20_000)
    parser.add_argument("--block", type=int, default=1000, help="monitor block size (predictions per window)")
    parser.add_argument("--judged-blocks", type=int, default=2, help="blocks the monitor runner judges per target")
    parser.add_argument("--findings", type=int, default=0, help="findings in the table (0: predictions / 500 x 4)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    settings = load_stack_settings()
    stack = StackEndpoints(settings.kafka_bootstrap, settings.postgres_dsn, settings.triton_grpc_url, "")
    topics = make_topics(stack.kafka_bootstrap)
    findings_topic = f"bench.{uuid.uuid4().hex[:8]}.findings"
    from services.runtime.kafka import ensure_topics
    from stack.topics import TopicSpec

    ensure_topics(stack.kafka_bootstrap, [TopicSpec(findings_topic, 1)])
    try:
        async with scratch_database(stack.postgres_dsn, "bench_dash", MIGRATION_DIRS) as dsn:
            t0 = time.perf_counter()
            records = traffic(args.predictions, args.reads, topics, seed=7)
            group = f"bench-dash-{uuid.uuid4().hex[:6]}"
            with writer_process(stack.kafka_bootstrap, dsn, topics, group):
                await asyncio.to_thread(produce_all, stack.kafka_bootstrap, records)
                pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
                try:
                    await wait_committed(pool, group, len(records), timeout_s=900)
                    counts = await pool.fetchrow(
                        "select (select count(*) from ledger_predictions) p, (select count(*) from ledger_reads) r"
                    )
                finally:
                    await pool.close()
            print(f"ledger: {counts['p']} predictions, {counts['r']} reads ({time.perf_counter() - t0:.0f} s)")
            with TemporaryDirectory(prefix="bench-dash-") as tmp:
                reports = Path(tmp) / "reports"
                t0 = time.perf_counter()
                findings = await monitor_pass(
                    dsn, stack.kafka_bootstrap, findings_topic, reports, args.block, blocks_per_pass=args.judged_blocks
                )
                print(f"monitor runner: {findings} findings in {time.perf_counter() - t0:.0f} s (block {args.block})")
                rows = await fill_findings(dsn, args.findings or args.predictions // 500 * 4)
                print(f"findings table: {rows} rows ({findings} judged, the rest copies shifted back in time)")
                async with running_governance(
                    stack, dsn, findings_topic, name="bench-dash", controller_interval_s=3600
                ) as gov:
                    await seed_governance(gov, gov.tokens["olga"])
                    token = gov.tokens["bert"]
                    async with serve_dashboard(gov.target, dsn, reports) as served:
                        server = await server_times(served.url, token, args.runs)
                        browser = await browser_times(served.url, token, args.runs)
    finally:
        delete_topics(stack.kafka_bootstrap, [topics])
    print(f"\n{'page':<10} {'server ms':>10} {'api ms':>8} {'first paint ms':>15} {'load ms':>9}  target")
    ok = True
    for name in PAGES:
        served_ms, api = server[name]
        paint, load = browser[name]
        meets = 0 <= paint < 1000 and (api is None or api < 300)
        ok &= meets
        api_text = f"{api:.0f}" if api is not None else "-"
        print(
            f"{name:<10} {served_ms:>10.0f} {api_text:>8} {paint:>15.0f} {load:>9.0f}  {'met' if meets else 'MISSED'}"
        )
    print(json.dumps({"targets_met": ok, "server": server, "browser": browser}))


if __name__ == "__main__":
    asyncio.run(main())
