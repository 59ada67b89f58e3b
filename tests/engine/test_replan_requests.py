"""Re-plan requests: debounced, and covered by a pending one without writing its row."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from dispatch.storage import engine as store
from tests.pg_locks import waiting_on_a_lock

T0 = datetime(2026, 7, 14, 9, 0, tzinfo=UTC)


async def test_requests_list_19_reasons_then_are_covered_without_a_write(pool: Any) -> None:
    async with pool.acquire() as con:
        gen0 = await store.generation(con)
        await store.request_replan(con, T0, "first", 1.0)
        for k in range(30):
            await store.request_replan(con, T0 + timedelta(seconds=k), f"later {k}", 1.0)
        state = await store.state(con)
        # The first request set the due time; later ones did not push it.
        assert state["replan_due_at"] == T0 + timedelta(seconds=1)
        assert state["reasons"][0] == "first" and len(state["reasons"]) == 19
        assert await store.generation(con) == gen0 + 19
        # An earlier due time still brings the re-plan forward (and lists its reason).
        await store.request_replan(con, T0, "urgent", 0)
        state = await store.state(con)
        assert state["replan_due_at"] == T0 and state["reasons"][-1] == "urgent"
        gen, reasons = await store.claim_replan(con)
        assert reasons[-1] == "urgent" and (await store.state(con))["replan_due_at"] is None
        # After the claim, the next request starts a new period.
        await store.request_replan(con, T0, "next", 1.0)
        assert (await store.state(con))["reasons"] == ["next"]
        assert await store.generation(con) == gen + 1


async def test_a_covered_request_holds_the_engine_claim_until_its_commit(pool: Any) -> None:
    async with pool.acquire() as con:
        for k in range(19):
            await store.request_replan(con, T0, f"r{k}", 1.0)
    async with pool.acquire() as covered, pool.acquire() as other, pool.acquire() as engine:
        tx = covered.transaction()
        await tx.start()
        await store.request_replan(covered, T0, "covered", 1.0)  # writes nothing
        assert "covered" not in (await store.state(other))["reasons"]
        # Other requests are not held up by it ...
        await asyncio.wait_for(store.request_replan(other, T0, "another", 1.0), 5)
        # ... but the engine's claim waits until the covered change is committed.
        claim = asyncio.create_task(store.claim_replan(engine))
        pid = engine.get_server_pid()
        await waiting_on_a_lock(
            other,
            pid,
            within=10,
            what="the claim",
            went_through=(claim.done, "the claim got through before the covered change committed"),
        )
        assert not claim.done()
        await tx.commit()
        _, reasons = await asyncio.wait_for(claim, 5)
        assert len(reasons) == 19
