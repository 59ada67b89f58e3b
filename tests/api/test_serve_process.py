"""The real ``muster serve`` process: embedded PostgreSQL, readiness, first-start hint, clean stop.

Also the container packaging (``Dockerfile``, ``compose.yaml``), which CI cannot build here (no
Docker engine) but lints and checks for the wiring production relies on.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
START_DEADLINE_S = 120.0
STOP_DEADLINE_S = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _env(database_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MUSTER_DATA_DIR")}
    env["MUSTER_LOG_FORMAT"] = "text"
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes (its parent has not reaped it yet).
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _wait_exit(what: str, pid: int, deadline_s: float) -> None:
    """Block until process ``pid`` (not our child) has exited: its pidfd becomes readable."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # gone already
    try:
        readable, _, _ = select.select([fd], [], [], deadline_s)
    finally:
        os.close(fd)
    if not readable and _pid_alive(pid):  # a zombie counts as gone (see _pid_alive)
        raise AssertionError(f"timed out after {deadline_s}s waiting for {what}")


LISTENING = "Muster listening on"


class Served:
    """A running ``muster serve`` subprocess; a thread copies its output to a log file and
    tells when the server listens (or the process ends)."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.log = log
        self.lines: list[str] = []
        self.listening = threading.Event()
        self._copier = threading.Thread(target=self._copy, daemon=True)
        self._copier.start()

    def _copy(self) -> None:
        assert self.proc.stdout is not None
        with self.log.open("a") as out:
            for raw in self.proc.stdout:
                line = raw.decode(errors="replace")
                self.lines.append(line)
                out.write(line)
                out.flush()
                if line.startswith(LISTENING):
                    self.listening.set()
        self.listening.set()  # output ended: the process is going; wait_ready tells which

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return "".join(self.lines)

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        req = urllib.request.Request(self.url + path)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_ready(self) -> None:
        """Wait for the 'listening' line (the database is migrated and the site is up before
        it is printed), then /readyz must answer 200 at once."""
        if not self.listening.wait(START_DEADLINE_S):
            raise AssertionError(f"/readyz not 200 within {START_DEADLINE_S}s:\n{self.output()}")
        if self.proc.poll() is not None or LISTENING not in self.output():
            self.proc.wait(timeout=STOP_DEADLINE_S)
            raise AssertionError(f"serve exited with {self.proc.returncode}:\n{self.output()}")
        status, body = self.get("/readyz")
        assert status == 200, (status, body, self.output())

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"serve ignored signal {sig}:\n{self.output()}") from None
        self._copier.join(STOP_DEADLINE_S)  # the last lines are in output() too
        return code


@contextmanager
def serve(data_dir: Path, log: Path, database_url: str | None = None) -> Iterator[Served]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        env=_env(database_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    served = Served(proc, port, log)
    try:
        yield served
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().splitlines()[0])


def _cli(*argv: str, database_url: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *argv],
        env=_env(database_url),
        capture_output=True,
        text=True,
        timeout=START_DEADLINE_S,
        check=False,
        cwd=ROOT,
    )


# ----------------------------------------------------------------------------------- serving


def test_serve_on_embedded_postgres_becomes_ready_and_stops_it_on_sigterm(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    pgdata = data_dir / "pgdata"
    log = tmp_path / "serve.log"
    with serve(data_dir, log) as first:
        first.wait_ready()
        assert (pgdata / "PG_VERSION").exists(), "the cluster lives under --data-dir"
        postmaster = _postmaster_pid(pgdata)
        assert _pid_alive(postmaster)

        # First start on an empty database says how to get an admin token ...
        out = first.output()
        assert "No admin token exists yet" in out, out
        hinted = re.search(r"^\s+(muster token create .*)$", out, re.MULTILINE)
        assert hinted is not None, out
        argv = hinted.group(1).split()[1:]
        assert argv[argv.index("--data-dir") + 1] == str(data_dir)

        # ... and that command works while the server runs, giving a token the server accepts.
        made = _cli(*argv)
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        status, body = first.get("/v1/tokens", token)
        assert status == 200, body
        assert first.get("/v1/tokens")[0] == 401

        code = first.stop(signal.SIGTERM)
        assert code == 0, first.output()
        _wait_exit("the embedded postgres to exit", postmaster, 30)
        assert not (pgdata / "postmaster.pid").exists()

    # A second start on the same data dir finds the admin token: no hint; SIGINT stops it too.
    with serve(data_dir, log) as second:
        second.wait_ready()
        postmaster = _postmaster_pid(pgdata)
        assert second.get("/v1/tokens", token)[0] == 200
        assert "No admin token exists yet" not in second.output()
        assert second.stop(signal.SIGINT) == 0, second.output()
        _wait_exit("the embedded postgres to exit", postmaster, 30)
        assert not (pgdata / "postmaster.pid").exists()


def test_serve_with_database_url_uses_that_server(tmp_path: Path, db_dsn: str) -> None:
    data_dir = tmp_path / "data"
    with serve(data_dir, tmp_path / "serve.log", database_url=db_dsn) as served:
        served.wait_ready()
        out = served.output()
        assert "muster token create --role admin" in out and "--data-dir" not in out
        assert not (data_dir / "pgdata").exists()
        assert served.stop() == 0, served.output()


# ---------------------------------------------------------------------------------- packaging


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint not installed (pip install -e '.[dev]')")
    done = subprocess.run(
        [hadolint, "Dockerfile"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_runs_muster_as_a_non_root_user_with_a_health_check() -> None:
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())  # join continuations
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")
    ]
    froms = [ln for ln in lines if ln.startswith("FROM ")]
    assert all(ln.split()[1].startswith("python:3.11-slim") for ln in froms), froms
    final_stage = lines[lines.index(froms[-1]) :]
    users = [ln.split()[1] for ln in final_stage if ln.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    health = next(ln for ln in final_stage if ln.startswith("HEALTHCHECK"))
    assert "/healthz" in health and "urllib" in health
    assert any(ln.startswith("EXPOSE") and "8080" in ln for ln in final_stage)
    cmd = next(ln for ln in final_stage if ln.startswith("CMD"))
    assert cmd == 'CMD ["muster", "serve", "--host", "0.0.0.0"]'


def test_compose_wires_the_app_to_a_healthy_postgres() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    (db_name,) = [
        n for n, s in services.items() if str(s.get("image", "")).startswith("postgres:16")
    ]
    db = services[db_name]
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    volume = db["volumes"][0].split(":")
    assert volume[1] == "/var/lib/postgresql/data" and volume[0] in compose["volumes"]

    app = next(s for n, s in services.items() if n != db_name)
    assert app["depends_on"][db_name]["condition"] == "service_healthy"
    url = app["environment"]["DATABASE_URL"]
    assert re.match(rf"postgresql://[^@]+@{db_name}:5432/\w+", url), url
    assert app["build"] in (".", {"context": "."})
