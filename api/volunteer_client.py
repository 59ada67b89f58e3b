"""The reference volunteer client: ``muster volunteer --url URL --token T``.

It shows how a client talks to Muster:

1. Open ``GET /v1/me/stream`` (Server-Sent Events). Every message is an envelope
   ``{"seq", "kind", "payload", "exercise", "created_at"}`` sent as ``id: <seq>``,
   ``event: <kind>``, ``data: <envelope>``; ``: ping`` comments are heartbeats.
2. Remember the highest ``seq`` seen (``--state FILE`` keeps it across restarts). When the
   connection drops, reconnect with ``Last-Event-ID: <seq>`` (and ``?since=<seq>``, for proxies
   that drop the header): the server replays what was missed, in order. Delivery is
   at-least-once, so drop any envelope whose ``seq`` is not above the last one handled.
3. Answer with ``POST /v1/assignments/{id}/accept``, ``.../decline`` (``{"reason": ...}``) and
   ``.../status`` (``{"status": "en_route" | "on_scene" | "done"}``), each with an
   ``Idempotency-Key`` reused on every retry (lost connection, 5xx, or 409 "request in
   progress"), so a lost response never applies an answer twice. An exercise offer of a
   live-participation drill carries ``payload.links``: the URLs to answer it at (the drill's
   own routes); a client uses them when present.

Typed commands: ``accept ID``, ``decline ID [reason...]``, ``status ID en_route|on_scene|done``,
``list`` (open offers and assignments) and ``quit``. Exercise messages are marked ``[EXERCISE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp


@dataclass
class SseEvent:
    """One parsed Server-Sent Event."""

    id: str | None = None
    event: str = "message"
    data: str = ""


async def parse_sse(lines: AsyncIterable[bytes]) -> AsyncIterator[SseEvent]:
    """Turn a byte-line stream into events (comments and ``retry:`` are skipped)."""
    ev = SseEvent()
    data: list[str] = []
    async for raw in lines:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                ev.data = "\n".join(data)
                yield ev
            ev, data = SseEvent(), []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "id":
            ev.id = value
        elif name == "event":
            ev.event = value
        elif name == "data":
            data.append(value)


@dataclass
class VolunteerClient:
    """Stream, de-duplicate and answer; resumes from ``last_seq`` after any disconnect."""

    url: str
    token: str
    last_seq: int = 0
    state_file: Path | None = None
    max_backoff_s: float = 30.0
    session: aiohttp.ClientSession | None = None
    offers: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Where to answer an assignment when not at /v1/assignments/{id}/... (drill offers carry
    # ``payload.links``: a live-participation drill's answers go to the drill).
    links: dict[str, dict[str, str]] = field(default_factory=dict)

    post_timeout_s: float = 30.0
    retry_delay_s: float = 0.5

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        if self.state_file is not None and self.state_file.exists():
            self.last_seq = int(json.loads(self.state_file.read_text()).get("last_seq", 0))

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def __aenter__(self) -> VolunteerClient:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=60))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    def _remember(self, seq: int) -> None:
        self.last_seq = seq
        if self.state_file is not None:
            # Write-then-rename: a crash mid-write leaves the old state, never a torn file.
            tmp = self.state_file.with_name(self.state_file.name + ".tmp")
            tmp.write_text(json.dumps({"last_seq": seq}))
            os.replace(tmp, self.state_file)

    async def messages(self, *, reconnect: bool = True) -> AsyncIterator[dict[str, Any]]:
        """Envelopes in order, each once, across reconnects (with exponential backoff)."""
        assert self.session is not None, "use 'async with VolunteerClient(...)'"
        backoff = 0.5
        while True:
            try:
                headers = {**self.headers, "Accept": "text/event-stream"}
                params = {}
                if self.last_seq:
                    headers["Last-Event-ID"] = str(self.last_seq)
                    params["since"] = str(self.last_seq)
                async with self.session.get(
                    f"{self.url}/v1/me/stream", headers=headers, params=params
                ) as resp:
                    if resp.status in (401, 403):
                        raise PermissionError(f"the server refused the token ({resp.status})")
                    resp.raise_for_status()
                    backoff = 0.5
                    async for ev in parse_sse(resp.content):
                        env = json.loads(ev.data)
                        seq = int(env["seq"])
                        if seq <= self.last_seq:
                            continue  # at-least-once delivery: already handled
                        self._track(env)
                        self._remember(seq)
                        yield env
            except (TimeoutError, aiohttp.ClientError, ConnectionError):
                if not reconnect:
                    raise
            if not reconnect:
                return
            await asyncio.sleep(backoff)  # back off before reconnecting; never a busy loop
            backoff = min(backoff * 2, self.max_backoff_s)

    def _track(self, env: dict[str, Any]) -> None:
        payload = env.get("payload", {})
        aid = payload.get("assignment")
        if aid is None:
            return
        if isinstance(payload.get("links"), dict):
            self.links[aid] = payload["links"]
        if env["kind"] == "offer":
            self.offers[aid] = payload
        elif env["kind"] in (
            "offer_withdrawn",
            "offer_expired",
            "assignment_cancelled",
            "released",
        ):
            self.offers.pop(aid, None)

    async def _post(
        self, path: str, body: dict[str, Any] | None = None, *, tries: int = 4
    ) -> dict[str, Any]:
        """POST with one Idempotency-Key for every attempt: the answer is applied once.

        Retried (same key, exponential backoff): a lost connection or timeout (the response
        may be lost after the server applied the answer: the retry gets the stored answer),
        a 5xx, and 409 "request in progress" (the first attempt is still running).
        """
        assert self.session is not None
        key = uuid.uuid4().hex
        delay = self.retry_delay_s
        for attempt in range(tries):
            last = attempt == tries - 1
            try:
                async with self.session.post(
                    f"{self.url}{path}",
                    json=body or {},
                    headers={**self.headers, "Idempotency-Key": key},
                    timeout=aiohttp.ClientTimeout(total=self.post_timeout_s),
                ) as resp:
                    try:
                        out: dict[str, Any] = await resp.json(content_type=None)
                    except ValueError:  # e.g. a proxy's HTML error page
                        out = {"title": resp.reason or "", "detail": await resp.text()}
                    if resp.status < 400:
                        return out
                    again = resp.status >= 500 or (
                        resp.status == 409
                        and str(out.get("type", "")).endswith("/request-in-progress")
                    )
                    if not again or last:
                        raise AnswerRefused(resp.status, out)
            except (TimeoutError, aiohttp.ClientConnectionError):
                if last:
                    raise
            await asyncio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    async def open_assignments(self) -> list[dict[str, Any]]:
        """Own offers and assignments still open, from the server (the source of truth)."""
        assert self.session is not None
        async with self.session.get(
            f"{self.url}/v1/me/assignments",
            params={"status": "offered,accepted,en_route,on_scene"},
            headers=self.headers,
            timeout=aiohttp.ClientTimeout(total=self.post_timeout_s),
        ) as resp:
            if resp.status >= 400:
                raise AnswerRefused(resp.status, await resp.json(content_type=None))
            items: list[dict[str, Any]] = (await resp.json())["items"]
            return items

    def _answer_path(self, assignment_id: str, verb: str) -> str:
        """The offer's own link for ``verb`` when it gave one, else the live assignment route."""
        link = self.links.get(assignment_id, {}).get(verb)
        return link if link else f"/v1/assignments/{assignment_id}/{verb}"

    async def accept(self, assignment_id: str) -> dict[str, Any]:
        """Say yes to an offer."""
        out = await self._post(self._answer_path(assignment_id, "accept"))
        self.offers.pop(assignment_id, None)
        return out

    async def decline(self, assignment_id: str, reason: str = "") -> dict[str, Any]:
        """Say no to an offer (the reason is optional)."""
        out = await self._post(self._answer_path(assignment_id, "decline"), {"reason": reason})
        self.offers.pop(assignment_id, None)
        return out

    async def report(self, assignment_id: str, status: str) -> dict[str, Any]:
        """Report progress: en_route, on_scene or done."""
        return await self._post(self._answer_path(assignment_id, "status"), {"status": status})


class AnswerRefused(Exception):
    """The server answered with a problem (e.g. 409: the offer expired)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"{status} {problem.get('title', '')}: {problem.get('detail', '')}")
        self.status = status
        self.problem = problem


def describe(env: dict[str, Any]) -> str:
    """One line for a human."""
    p = env.get("payload", {})
    mark = "[EXERCISE] " if env.get("exercise") else ""
    kind = env["kind"]
    if kind == "offer":
        return (
            f"{mark}#{env['seq']} OFFER {p.get('assignment')}: {p.get('skill')} at incident "
            f"{p.get('incident')}, {p.get('travel_minutes') or '?'} min away, answer by "
            f"{p.get('deadline')} — {p.get('reason', '')}"
        )
    return f"{mark}#{env['seq']} {kind.upper()} {json.dumps(p, ensure_ascii=False)}"


async def _commands(client: VolunteerClient, out: Callable[[str], None]) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    except ValueError:  # stdin is a regular file (commands scripted in advance)
        reader.feed_data(sys.stdin.buffer.read())
        reader.feed_eof()
    while line := (await reader.readline()).decode():
        words = line.split()
        if not words:
            continue
        try:
            match words:
                case ["accept", aid]:
                    out(f"accepted {(await client.accept(aid))['id']}")
                case ["decline", aid, *reason]:
                    out(f"declined {(await client.decline(aid, ' '.join(reason)))['id']}")
                case ["status", aid, ("en_route" | "on_scene" | "done") as st]:
                    out(f"{aid} is now {(await client.report(aid, st))['status']}")
                case ["list"]:
                    items = await client.open_assignments()
                    for a in items:
                        by = (
                            f" (answer by {a['offer_deadline']})"
                            if a["status"] == "offered"
                            else ""
                        )
                        out(f"  {a['id']}: {a['status']} {a['skill']} at {a['incident']}{by}")
                    if not items:
                        out("  nothing open")
                case ["quit"] | ["exit"]:
                    return
                case _:
                    out(
                        "commands: accept ID | decline ID [reason] | status ID en_route|on_scene|done | list | quit"
                    )
        except AnswerRefused as exc:
            out(f"refused: {exc}")
        except (TimeoutError, aiohttp.ClientError) as exc:
            out(f"could not reach the server ({exc!r}); try again")


async def run(url: str, token: str, state: Path | None) -> int:
    """Show the stream and take commands until ``quit`` or end of input.

    A fatal stream error (the token is refused) ends the session and is raised here.
    """

    def out(text: str) -> None:
        print(text, flush=True)

    async with VolunteerClient(url, token, state_file=state) as client:

        async def show() -> None:
            async for env in client.messages():
                out(describe(env))

        stream = asyncio.create_task(show())
        commands = asyncio.create_task(_commands(client, out))
        try:
            done, _ = await asyncio.wait({stream, commands}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (stream, commands):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        for task in done:
            task.result()  # re-raise what ended the session (a refused token, for one)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="muster volunteer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--url", required=True, help="Muster's base URL, e.g. http://localhost:8080"
    )
    parser.add_argument("--token", required=True, help="a volunteer token")
    parser.add_argument("--state", type=Path, help="file to remember the last message id in")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(run(args.url, args.token, args.state))
    except PermissionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
