"""The compose stack, checked statically (no Docker engine here; docs/docker.md).

The file parses; after interpolation the way compose does it, the compose-spec JSON schema accepts
it; it keeps the structure of Airflow's official compose file; every service the code talks to is
there with a healthcheck; the connection ids and ``PRECACHE_*`` names are the ones the code reads
(derived from the code, not listed twice); images are pinned; secrets are required variables.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
SCHEMA_FILE = Path(__file__).with_name("compose-spec.json")
SCHEMA_SOURCE = Path(__file__).with_name("compose-spec.json.SOURCE.md")

AIRFLOW_SERVICES = {  # the official file's services and their commands
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}
ONE_SHOT = {"airflow-init", "airflow-cli"}  # run to completion: no healthcheck, no restart


# --- compose's interpolation (https://docs.docker.com/reference/compose-file/interpolation/) ----

_VAR = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
                  r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")


class MissingVariables(Exception):
    """``${VAR:?message}`` / ``${VAR?message}`` with VAR missing; carries every such VAR."""


def interpolate(value: Any, env: dict[str, str], missing: dict[str, str] | None = None) -> Any:
    """Substitute variables in every string value of the parsed file, as compose does first."""
    top = missing is None
    missing = {} if top else missing
    if isinstance(value, dict):
        out: Any = {k: interpolate(v, env, missing) for k, v in value.items()}
    elif isinstance(value, list):
        out = [interpolate(v, env, missing) for v in value]
    elif isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            if m["escaped"]:
                return "$"
            name = m["braced"] or m["named"]
            op, arg = m["op"], m["arg"] or ""
            unset_or_empty = not env.get(name)
            absent = (unset_or_empty if op and op.startswith(":") else name not in env)
            if op in (":-", "-"):
                return interpolate(arg, env, missing) if absent else env[name]
            if op in (":?", "?"):
                if absent:
                    missing[name] = arg
                    return ""
                return env[name]
            if op in (":+", "+"):
                return "" if absent else interpolate(arg, env, missing)
            return env.get(name, "")
        out = _VAR.sub(sub, value)
    else:
        out = value
    if top and missing:
        raise MissingVariables(missing)
    return out


def env_example() -> dict[str, str]:
    """``VAR=value`` lines of .env.example; ``# VAR=value`` lines are documented optional ones."""
    found = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if m := re.fullmatch(r"#?\s*([A-Z_][A-Z0-9_]*)=(.*)", line.strip()):
            found[m[1]] = m[2]
    return found


def dummy_env() -> dict[str, str]:
    """.env.example with every empty value filled with a distinct URL-safe dummy secret."""
    return {k: v or f"dummy{k.lower().replace('_', '')}" for k, v in env_example().items()
            if not ENV_EXAMPLE.read_text().count(f"# {k}=")}


RAW_TEXT = COMPOSE_FILE.read_text()
RAW = yaml.safe_load(RAW_TEXT)
COMPOSE = interpolate(RAW, dummy_env())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
COMMON_ENV: dict[str, str] = COMPOSE["x-airflow-common"]["environment"]


def env_of(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment") or {}
    assert isinstance(env, dict), f"{service}: environment as a mapping, please"
    return {k: str(v) for k, v in env.items()}


# --- what the code reads, derived from the code ------------------------------------------------

def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or \
        (isinstance(node, ast.Name) and node.id in ("environ", "env"))


def _is_env_get(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Attribute) and node.func.attr == "get" and _is_environ(node.func.value))
        or (isinstance(node.func, ast.Attribute) and node.func.attr == "getenv")
        or (isinstance(node.func, ast.Name) and node.func.id == "getenv"))


def env_names_read(*folders: str) -> set[str]:
    """Names the code reads with os.environ.get / os.getenv / os.environ[...], also through
    helpers such as config._int(name, default) that pass their parameter on to os.environ."""
    names: set[str] = set()
    for folder in folders:
        for path in (REPO / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            helpers = set()
            for fn in ast.walk(tree):
                if isinstance(fn, ast.FunctionDef):
                    params = {a.arg for a in fn.args.args}
                    if any(_is_env_get(c) and c.args and isinstance(c.args[0], ast.Name) and c.args[0].id in params
                           for c in ast.walk(fn)):
                        helpers.add(fn.name)
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                        and (_is_env_get(node) or (isinstance(node.func, ast.Name) and node.func.id in helpers)):
                    names.add(node.args[0].value)
                if isinstance(node, ast.Subscript) and _is_environ(node.value) and isinstance(node.slice, ast.Constant):
                    names.add(node.slice.value)
    return names


def conn_ids_in_code() -> set[str]:
    """Default connection ids of the hooks, operators, sensors and tasks: string defaults of
    parameters named ``*conn_id`` and ``default_conn_name`` class attributes."""
    ids: set[str] = set()
    for folder in ("plugins", "dags"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    args = node.args.args + node.args.kwonlyargs
                    defaults = [None] * (len(node.args.args) - len(node.args.defaults)) + node.args.defaults \
                        + node.args.kw_defaults
                    for arg, default in zip(args, defaults):
                        if arg.arg.endswith("conn_id") and isinstance(default, ast.Constant) and default.value:
                            ids.add(default.value)
                if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "default_conn_name"
                                                        for t in node.targets) and isinstance(node.value, ast.Constant):
                    ids.add(node.value.value)
    return ids


def contract_conn_types() -> dict[str, str]:
    """``conn id -> conn type`` from the connection rows of docs/contracts.md §1."""
    rows = re.findall(r"^\| [^|]*connection \| `(\w+)` \| conn type `([\w+]+)`", (REPO / "docs/contracts.md").read_text(), re.M)
    return dict(rows)


def connection(var: str, value: str):
    from airflow.models.connection import Connection

    conn_id = var.removeprefix("AIRFLOW_CONN_").lower()
    return Connection.from_json(value, conn_id=conn_id) if value.lstrip().startswith("{") \
        else Connection(conn_id=conn_id, uri=value)


# --- the file and the schema -------------------------------------------------------------------

def test_schema_is_the_vendored_compose_spec() -> None:
    digest = hashlib.sha256(SCHEMA_FILE.read_bytes()).hexdigest()
    assert digest in SCHEMA_SOURCE.read_text(), "compose-spec.json changed: update compose-spec.json.SOURCE.md"


def test_compose_spec_schema_accepts_the_interpolated_file() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    checker = jsonschema.FormatChecker()

    @checker.checks("duration", raises=ValueError)
    def _go_duration(value: object) -> bool:  # compose-go registers Go's time.ParseDuration
        if not isinstance(value, str) or not re.fullmatch(r"[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+)", value):
            raise ValueError(f"not a Go duration: {value!r}")
        return True

    validator = jsonschema.Draft202012Validator(schema, format_checker=checker)
    errors = sorted(validator.iter_errors(COMPOSE), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_secrets_are_required_variables_documented_in_env_example() -> None:
    example = env_example()
    empty = {k for k, v in example.items() if v == "" and f"# {k}=" not in ENV_EXAMPLE.read_text()}
    with pytest.raises(MissingVariables) as refused:
        interpolate(RAW, {k: v for k, v in example.items() if v})
    required = set(refused.value.args[0])
    # compose refuses to start without each secret, and .env.example leaves each one to fill in;
    # any other value left empty there is explicitly optional in the file: ${VAR:-}
    assert required <= empty, required - empty
    for name in empty - required:
        assert set(re.findall(r"\$\{" + name + r"([^}]*)\}", RAW_TEXT)) == {":-"}, name
    assert {"AIRFLOW_ADMIN_PASSWORD", "POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "AIRFLOW_JWT_SECRET",
            "AIRFLOW_FERNET_KEY"} <= required
    for name in required:  # never a default for a secret anywhere in the file
        assert not re.search(r"\$\{" + name + r":?[-+]", RAW_TEXT), name
    used = {m["braced"] or m["named"] for m in _VAR.finditer(RAW_TEXT) if not m["escaped"]}
    assert used == set(example), ("documented in .env.example but unused", set(example) - used,
                                  "used but undocumented", used - set(example))


def test_no_credential_is_a_literal() -> None:
    """Every password in a URL or connection is one of the required secrets, never a fixed
    one (no airflow:airflow, no guest:guest); the API's authentication is on."""
    secrets = {v for k, v in dummy_env().items() if not env_example()[k]}
    urls = [v for svc in SERVICES for v in env_of(svc).values() if re.match(r"[\w+]+://", v)]
    assert len(urls) >= 5
    for url in urls:
        password = urlsplit(url).password
        assert password is None or password in secrets, url
    for svc in SERVICES:
        env = env_of(svc)
        for key, value in env.items():
            if re.search(r"PASSWORD|PASS$|SECRET|FERNET|TOKEN", key) and not key.endswith("_FILE"):
                assert value in secrets, (svc, key)
            if key.startswith("AIRFLOW_CONN_"):
                assert connection(key, value).password in secrets, (svc, key)
        assert env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "false").lower() == "false", svc
        assert "AIRFLOW__API__AUTH_BACKENDS" not in env, svc
        assert "_AIRFLOW_WWW_USER_PASSWORD" not in env, svc
    assert "guest" not in RAW_TEXT


def test_admin_password_is_written_where_the_api_server_reads_it() -> None:
    init, api = SERVICES["airflow-init"], SERVICES["airflow-apiserver"]
    path = env_of("airflow-apiserver")["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    assert env_of("airflow-init")["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == path
    mount = next(v for v in api["volumes"] if path.startswith(v.split(":")[1] + "/"))
    assert mount in init["volumes"]
    assert not any(mount in SERVICES[s].get("volumes", []) for s in SERVICES if s not in ("airflow-init", "airflow-apiserver"))
    script = init["command"][-1]
    assert 'os.environ["ADMIN_PASSWORD"]' in script and "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" in script
    assert re.fullmatch(r"\$\{AIRFLOW_ADMIN_PASSWORD:\?[^}]+\}", RAW["services"]["airflow-init"]["environment"]["ADMIN_PASSWORD"])
    assert "AIRFLOW_ADMIN_PASSWORD" not in COMMON_ENV and "ADMIN_PASSWORD" not in COMMON_ENV


# --- structure of the official file --------------------------------------------------------------

def test_structure_of_the_official_airflow_file() -> None:
    assert "&airflow-common" in RAW_TEXT and "&airflow-common-env" in RAW_TEXT
    common = COMPOSE["x-airflow-common"]
    assert common["user"] == "50000:0" and "${AIRFLOW_UID:-50000}:0" in RAW_TEXT
    assert common["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert urlsplit(common["environment"]["AIRFLOW__CELERY__BROKER_URL"]).scheme == "amqp"
    assert urlsplit(common["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).scheme.startswith("postgresql")
    for name, command in {**AIRFLOW_SERVICES, "airflow-init": None}.items():
        svc = SERVICES[name]
        for key in ("build", "image", "user"):
            if name != "airflow-init" or key != "user":
                assert svc[key] == common[key], (name, key)
        assert set(common["environment"].items()) <= set(env_of(name).items()), name
        if command:
            assert svc["command"] == command, name
            assert svc["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}, name
            for dep in common["depends_on"]:
                assert dep in svc["depends_on"], (name, dep)
    assert SERVICES["airflow-worker"]["environment"]["DUMB_INIT_SETSID"] == "0"
    assert env_of("airflow-init")["_AIRFLOW_DB_MIGRATE"] == "true"


def test_healthchecks_on_every_long_running_service() -> None:
    for name, svc in SERVICES.items():
        if name in ONE_SHOT:
            assert svc.get("restart") in (None, "no"), name
            continue
        check = svc.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert svc.get("restart") == "always", name
        for key in ("interval", "timeout", "start_period"):  # compose parses these as Go durations
            assert re.fullmatch(r"((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+", check.get(key, "1s")), (name, key)
        if "localhost:8974" in str(check["test"]):  # the scheduler's health server must be on
            assert env_of(name)["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in SERVICES, (name, dep)
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dep], (name, dep)


def test_workers_scale() -> None:
    """`docker compose up --scale airflow-worker=N` needs no fixed name and no host port."""
    for name, svc in SERVICES.items():
        assert "container_name" not in svc, name
    assert "ports" not in SERVICES["airflow-worker"]


def test_images_are_pinned_and_built_from_the_dockerfile() -> None:
    for name, svc in SERVICES.items():
        image = svc.get("image")
        assert image, f"{name}: no image"
        repo, _, tag = image.rpartition(":")
        assert repo and re.fullmatch(r"\d+(\.\d+)+([-.\w]*)", tag) and "latest" not in tag, (name, image)
    dockerfile = (REPO / "Dockerfile").read_text()
    from_lines = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
    assert from_lines == ["apache/airflow:3.3.2-python3.11"]
    builds = {svc["build"] for svc in SERVICES.values() if "build" in svc}
    assert builds == {"."} and (REPO / "Dockerfile").exists()
    assert re.search(r"pip install .*-r \S*requirements\.txt -c \S*constraints\.txt", dockerfile)
    for src in re.findall(r"^COPY\s+(?:--\S+\s+)*(.+)\s+\S+$", dockerfile, re.M):
        for path in src.split():
            assert (REPO / path).exists(), path
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in json.dumps(COMPOSE)
    assert "apache-airflow==3.3.2" in (REPO / "requirements.txt").read_text()


# --- what the code needs ---------------------------------------------------------------------------

def test_connections_match_the_code_and_the_contracts() -> None:
    code_ids = conn_ids_in_code()
    contract = contract_conn_types()
    assert code_ids and code_ids <= set(contract), (code_ids, contract)
    given = {k.removeprefix("AIRFLOW_CONN_").lower(): v for k, v in COMMON_ENV.items() if k.startswith("AIRFLOW_CONN_")}
    assert set(given) == set(contract), (set(given), set(contract))
    for conn_id, value in given.items():
        conn = connection(f"AIRFLOW_CONN_{conn_id.upper()}", value)
        assert conn.conn_type == contract[conn_id], conn_id
        assert conn.host in SERVICES, (conn_id, conn.host)  # every service the DAGs talk to is there
        if conn_id == "mongo_default":
            assert conn.schema == "integration"
        if conn.conn_type == "http":  # the stand-in listens on the connection's port
            assert str(conn.port) in " ".join(SERVICES[conn.host]["entrypoint"]), conn_id


def test_airflow_infrastructure_services_are_there() -> None:
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__BROKER_URL",
                "AIRFLOW__CELERY__RESULT_BACKEND", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL"):
        host = urlsplit(COMMON_ENV[key]).hostname
        assert host in SERVICES and "healthcheck" in SERVICES[host], (key, host)


def test_precache_settings_are_ones_the_code_reads() -> None:
    read = env_names_read("plugins", "dags")
    assert {"PRECACHE_REGISTRY_ROOTS", "PRECACHE_TTS_MAX_IN_FLIGHT"} <= read  # the scan works
    for name in AIRFLOW_SERVICES:
        for key in env_of(name):
            if key.startswith("PRECACHE_"):
                assert key in read, f"{name}: {key} is read nowhere in dags/ or plugins/"
    standin_env = env_names_read("standins")
    for name in ("portal", "tts-proxy"):
        for key in env_of(name):
            assert key in standin_env, f"{name}: {key} is read nowhere in standins/"


def test_airflow_config_options_exist() -> None:
    """AIRFLOW__SECTION__KEY of core sections name real options (a typo is silently ignored)."""
    import airflow

    template = yaml.safe_load((Path(airflow.__file__).parent / "config_templates/config.yml").read_text())
    for key in {k for svc in SERVICES for k in env_of(svc) if k.startswith("AIRFLOW__")}:
        section, option = key.removeprefix("AIRFLOW__").lower().split("__", 1)
        if section in template:  # provider sections (celery) are not in the core template
            assert option in template[section]["options"], key


def test_inbox_reports_and_pool() -> None:
    env = COMMON_ENV
    roots = env["PRECACHE_REGISTRY_ROOTS"].split(":")
    assert env["PRECACHE_INBOX_DIR"] in roots
    for name in (*AIRFLOW_SERVICES, "airflow-init"):
        targets = {v.split(":")[1] for v in SERVICES[name]["volumes"]}
        assert env["PRECACHE_INBOX_DIR"] in targets and env["PRECACHE_REPORTS_DIR"] in targets, name
        assert {"/opt/airflow/dags", "/opt/airflow/plugins"} <= targets, name
    script = SERVICES["airflow-init"]["command"][-1]
    pool = re.search(r"airflow pools set (\S+) \"\$\{PRECACHE_CACHE_PARALLEL_TASKS\}\"", script)
    assert pool and pool[1] == env["PRECACHE_TTS_POOL"], "airflow-init creates the pool the cache tasks use"


def test_init_script_is_valid_bash() -> None:
    import subprocess

    script = SERVICES["airflow-init"]["command"][-1]
    assert SERVICES["airflow-init"]["entrypoint"] == "/bin/bash"
    check = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
