"""A running Airflow for the tests of this folder: ``airflow api-server``, ``scheduler``,
``dag-processor`` and ``triggerer`` as subprocesses (LocalExecutor, SQLite), in a fresh
AIRFLOW_HOME, on free ports, with the connections and ``PRECACHE_*`` settings of the
integration conftest (per-session MongoDB database, private stand-ins).

Auth is the simple auth manager with one known admin user whose password this fixture
writes into the passwords file itself; ``POST /auth/token`` turns it into a JWT.
The components' logs go to files under the temp dir; their tails are attached to the
report of every failing test of this folder and printed when start-up fails.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import DB, MONGO_URI, REPO

# The running Airflow gets a database of its own: its phrase ledger must not turn phrases that the
# dag.test suites of the same session count on into "already cached" (or the other way round).
LIVE_DB = f"{DB}_live"

DAG_ID = "tts_precache"
USERNAME = "admin"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# Ports the developer's own Airflow (scripts/env.sh) may hold: never take them.
RESERVED_PORTS = {8080, 8793, 8794}
STARTUP_TIMEOUT = float(os.environ.get("PRECACHE_LIVE_STARTUP_TIMEOUT", "240"))
_instances: list[LiveAirflow] = []


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in RESERVED_PORTS:
            return port


def tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"({e})"


@dataclass
class LiveAirflow:
    base_url: str
    env: dict[str, str]
    home: Path
    username: str
    password: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _token: str | None = None

    # ---- logs -------------------------------------------------------------------------------
    def log_path(self, component: str) -> Path:
        return self.home / "logs" / f"{component}.log"

    def logs_tail(self, lines: int = 40) -> str:
        out = []
        for name in COMPONENTS:
            p = self.procs.get(name)
            status = "not started" if p is None else ("running" if p.poll() is None else f"exited {p.returncode}")
            out.append(f"----- {name} ({status}): {self.log_path(name)} -----\n{tail(self.log_path(name), lines)}")
        return "\n".join(out)

    def dead(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is not None]

    # ---- REST ---------------------------------------------------------------------------------
    def token(self, fresh: bool = False) -> str:
        """A JWT of the test user from ``POST /auth/token`` (cached)."""
        import requests

        if self._token is None or fresh:
            r = requests.post(f"{self.base_url}/auth/token", json={"username": self.username, "password": self.password}, timeout=30)
            assert r.status_code == 201, f"POST /auth/token: {r.status_code} {r.text}"
            self._token = r.json()["access_token"]
        return self._token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def request(self, method: str, path: str, **kw: Any) -> Any:
        import requests

        return requests.request(method, self.base_url + path, headers=self.headers(), timeout=kw.pop("timeout", 30), **kw)

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        r = self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        assert r.status_code == 200, f"trigger {dag_id}: {r.status_code} {r.text}"
        return r.json()["dag_run_id"]

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        from urllib.parse import quote

        r = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")
        assert r.status_code == 200, f"GET run {run_id}: {r.status_code} {r.text}"
        return r.json()

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        """The newest 100 runs of the DAG, newest first."""
        r = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100, "order_by": "-run_after"})
        assert r.status_code == 200, r.text
        return r.json()["dag_runs"]

    def run_count(self, dag_id: str) -> int:
        r = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 1})
        assert r.status_code == 200, r.text
        return r.json()["total_entries"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        from urllib.parse import quote

        r = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances", params={"limit": 100})
        if r.status_code != 200:
            return {"?": f"{r.status_code} {r.text[:200]}"}
        return {
            (f"{t['task_id']}[{t['map_index']}]" if t["map_index"] >= 0 else t["task_id"]): t["state"]
            for t in r.json()["task_instances"]
        }

    def wait(self, dag_id: str, run_id: str, timeout: float = 240) -> str:
        """Polls the run until it is finished; returns its final state (or the last one seen)."""
        deadline = time.monotonic() + timeout
        state = "?"
        while time.monotonic() < deadline:
            state = self.run(dag_id, run_id)["state"]
            if state in ("success", "failed"):
                return state
            if self.dead():
                raise RuntimeError(f"Airflow components died: {self.dead()}\n{self.logs_tail()}")
            time.sleep(1)
        return state

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        for name in COMPONENTS:
            with open(self.log_path(name), "wb") as log:
                self.procs[name] = subprocess.Popen(
                    ["airflow", name], env=self.env, cwd=self.home, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )

    def wait_ready(self, timeout: float) -> None:
        """Until the API answers, every component heartbeats and ``tts_precache`` is parsed."""
        import requests

        deadline = time.monotonic() + timeout
        last = "nothing yet"
        while time.monotonic() < deadline:
            if self.dead():
                raise RuntimeError(f"Airflow components exited during start-up: {self.dead()}")
            try:
                health = requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).json()
                unhealthy = [k for k in ("scheduler", "triggerer", "dag_processor")
                             if (health.get(k) or {}).get("status") != "healthy"]
                if unhealthy:
                    last = f"health: {unhealthy} not healthy yet"
                else:
                    r = self.request("GET", f"/api/v2/dags/{DAG_ID}", timeout=10)
                    if r.status_code == 200 and not r.json().get("is_paused"):
                        return
                    last = f"GET /api/v2/dags/{DAG_ID}: {r.status_code} {r.text[:300]}"
            except (requests.RequestException, ValueError) as e:
                last = f"{type(e).__name__}: {e}"
            time.sleep(1)
        raise TimeoutError(f"Airflow not ready after {timeout:.0f}s: {last}")

    def stop(self) -> None:
        """SIGTERM to every component's process group, then SIGKILL to whatever is left of the tree:
        task runners start sessions of their own, so killing the groups alone would leave them behind."""
        tree = set(self.procs_tree())
        for p in self.procs.values():
            if p.poll() is None:
                _signal_group(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for p in self.procs.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        tree |= set(self.procs_tree())
        for pid in tree:
            _signal_group(pid, signal.SIGKILL)
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for p in self.procs.values():
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def procs_tree(self) -> list[int]:
        """The components and all their live descendants."""
        return [pid for p in self.procs.values() for pid in _descendants(p.pid)]


def _signal_group(pid: int, sig: int) -> None:
    try:
        if os.getpgid(pid) == pid:  # only groups our components lead
            os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def airflow_env(home: Path, port: int, password_file: Path) -> dict[str, str]:
    """The environment of every component: this session's connections and ``PRECACHE_*``
    (set by tests/integration/conftest.py), plus an Airflow of its own."""
    venv_bin = str(Path(sys.prefix) / "bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    env.update({
        "AIRFLOW_HOME": str(home),
        "PATH": venv_bin + os.pathsep + env.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO)]),
        "PYTHONUNBUFFERED": "1",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs" / "tasks"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        # Quick to notice the DAG file and the deferred `complete` sensor's triggers.
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
        # The other DAGs of the folder run here too (all unpaused): an empty inbox of our own, and a
        # request queue of our own, so this Airflow's triggerer never takes messages meant for others.
        "AIRFLOW_CONN_MONGO_DEFAULT": MONGO_URI.rsplit("/", 1)[0].replace("mongodb:", "mongo:") + "/" + LIVE_DB,
        "PRECACHE_INBOX_DIR": str(home / "inbox"),
        "PRECACHE_REQUEST_QUEUE": f"kv.tts.precaching.v2.live-{secrets.token_hex(4)}",
    })
    (home / "inbox").mkdir(exist_ok=True)
    return env


def delete_queues(*names: str) -> None:
    import pika

    try:
        conn = pika.BlockingConnection(pika.URLParameters(os.environ["AIRFLOW_CONN_RABBITMQ_DEFAULT"]))
    except Exception:  # noqa: BLE001  (best effort: nothing to clean without the broker)
        return
    try:
        ch = conn.channel()
        for name in names:
            ch.queue_delete(name)
    finally:
        conn.close()


@pytest.fixture(scope="session")
def mongo_db() -> Iterator[Any]:
    """The running Airflow's database (overrides the dag.test suites' one in this folder)."""
    import pymongo

    client = pymongo.MongoClient(MONGO_URI, serverSelectionTimeoutMS=5000)
    yield client[LIVE_DB]
    client.close()


@pytest.fixture(scope="session")
def live_airflow(standins: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAirflow]:
    home = tmp_path_factory.mktemp("airflow-home")
    port = free_port()
    password = secrets.token_urlsafe(12)
    password_file = home / "simple_auth_manager_passwords.json"
    password_file.write_text(json.dumps({USERNAME: password}) + "\n")
    env = airflow_env(home, port, password_file)
    af = LiveAirflow(base_url=f"http://127.0.0.1:{port}", env=env, home=home, username=USERNAME, password=password)
    (home / "logs").mkdir()
    t0 = time.monotonic()
    migrate = subprocess.run(["airflow", "db", "migrate"], env=env, cwd=home, capture_output=True, text=True, timeout=300)
    (home / "logs" / "migrate.log").write_text(migrate.stdout + migrate.stderr)
    if migrate.returncode != 0:
        pytest.fail(f"airflow db migrate failed ({migrate.returncode}):\n{(migrate.stdout + migrate.stderr)[-4000:]}")
    t_migrate = time.monotonic() - t0
    _instances.append(af)
    try:
        af.start()
        af.wait_ready(STARTUP_TIMEOUT)
    except Exception as e:
        af.stop()
        pytest.fail(f"live Airflow did not start: {e}\n{af.logs_tail(80)}", pytrace=False)
    print(f"\nlive Airflow on {af.base_url} (home {home}): migrate {t_migrate:.0f}s, "
          f"ready {time.monotonic() - t0:.0f}s after start", file=sys.stderr)
    try:
        yield af
    finally:
        af.stop()
        _instances.remove(af)
        queue = env["PRECACHE_REQUEST_QUEUE"]
        delete_queues(queue, f"{queue}.dead")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _instances and "live_airflow" in getattr(item, "fixturenames", ()):
        rep.sections.append(("live Airflow logs (tails)", _instances[-1].logs_tail()))
