"""deploy/compose.yaml: valid Compose, one image for every process, secrets required, only the
gateway published.

Schema: the Compose Specification JSON schema vendored in the `check-jsonschema` package
(`check_jsonschema/builtin_schemas/vendor/compose-spec.json`), checked with `jsonschema`, both on
the file as written and after variable interpolation. No Docker engine or compose binary is used.
"""

from __future__ import annotations

import copy
import json
import re
from importlib.resources import files
from typing import Any

import jsonschema
import pytest

from stockmanager import registry
from tests.deploy.conftest import DEPLOY, PROCESSES, SERVICES

REQUIRED_SECRETS = {
    "POSTGRES_PASSWORD",
    "STOCKMANAGER_INTERNAL_SECRET",
    "STOCKMANAGER_ROOT_PASSWORD",
}
TEST_ENV = {
    "POSTGRES_PASSWORD": "pg-test-password",
    "STOCKMANAGER_INTERNAL_SECRET": "internal-test-secret-0123456789abcdef",
    "STOCKMANAGER_ROOT_PASSWORD": "root-test-password",
}
HEALTHCHECK = ["CMD", "python", "/usr/local/lib/stockmanager/healthcheck.py"]
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}; $$ is a literal $.
VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


class MissingVariable(Exception):
    pass


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable interpolation for the forms deploy/compose.yaml uses."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, argument = match.groups()
        current = env.get(name)
        unset_or_empty = current is None or ((operator or "").startswith(":") and current == "")
        if operator in (":-", "-") and unset_or_empty:
            return str(argument)
        if operator in (":?", "?") and unset_or_empty:
            raise MissingVariable(f"{name}: {argument}")
        return current or ""

    if "$" in VARIABLE.sub("", value):
        raise AssertionError(f"unsupported interpolation in {value!r}")
    return VARIABLE.sub(substitute, value)


def required_variables(text: str) -> set[str]:
    return {m.group(1) for m in VARIABLE.finditer(text) if m.group(2) in (":?", "?")}


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, Any]:
    vendored = files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema: dict[str, Any] = json.loads(vendored.read_text())
    return schema


def schema_errors(schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_validates_against_the_compose_specification(
    compose_schema: dict[str, Any], compose: dict[str, Any]
) -> None:
    assert schema_errors(compose_schema, compose) == []
    assert schema_errors(compose_schema, interpolate(compose, TEST_ENV)) == []


def test_the_compose_schema_check_is_strict(
    compose_schema: dict[str, Any], compose: dict[str, Any]
) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["gateway"]["depend_on"] = broken["services"]["gateway"].pop("depends_on")
    assert any("depend_on" in error for error in schema_errors(compose_schema, broken))


def test_the_secrets_are_required_and_nothing_else(
    compose_text: str, compose: dict[str, Any]
) -> None:
    assert required_variables(compose_text) == REQUIRED_SECRETS
    for missing in REQUIRED_SECRETS:
        env = {k: v for k, v in TEST_ENV.items() if k != missing}
        with pytest.raises(MissingVariable, match=missing):
            interpolate(compose, env)
        with pytest.raises(MissingVariable, match=missing):
            interpolate(compose, {**env, missing: ""})  # `:?` also refuses an empty value
    example = (DEPLOY / ".env.example").read_text()
    assert {
        line.split("=", 1)[0] for line in example.splitlines() if line and not line.startswith("#")
    } == REQUIRED_SECRETS


def test_database_credentials_agree(compose: dict[str, Any]) -> None:
    resolved = interpolate(compose, TEST_ENV)
    postgres = resolved["services"]["postgres"]["environment"]
    url = resolved["x-common-env"]["DATABASE_URL"]
    assert url == (
        f"postgresql://{postgres['POSTGRES_USER']}:{TEST_ENV['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{postgres['POSTGRES_DB']}"
    )
    assert resolved["x-common-env"]["REDIS_URL"] == "redis://redis:6379/0"
    assert resolved["x-common-env"]["STOCKMANAGER_TIMEZONE"] == "America/Argentina/Buenos_Aires"


def test_every_process_runs_from_the_one_image(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {*PROCESSES, "postgres", "redis", "migrate"}
    for name in [*PROCESSES, "migrate"]:
        service = services[name]
        assert service["image"] == "${STOCKMANAGER_IMAGE:-stockmanager:local}", name
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}, name
        assert service["read_only"] is True, name
        assert service["tmpfs"] == ["/tmp"], name
        assert service["cap_drop"] == ["ALL"], name
        env = service["environment"]
        for key, value in compose["x-common-env"].items():
            assert env[key] == value, (name, key)
    for name in PROCESSES:
        service = services[name]
        assert service["command"] == ["serve", name]
        assert service["healthcheck"]["test"] == HEALTHCHECK
        assert service["restart"] == "unless-stopped"
        depends = service["depends_on"]
        assert depends["postgres"] == {"condition": "service_healthy"}, name
        assert depends["redis"] == {"condition": "service_healthy"}, name
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, name
    assert {
        k: v["condition"] for k, v in services["gateway"]["depends_on"].items() if k in SERVICES
    } == dict.fromkeys(SERVICES, "service_healthy")


def test_only_the_gateway_publishes_a_port(compose: dict[str, Any]) -> None:
    published = {name: s["ports"] for name, s in compose["services"].items() if "ports" in s}
    assert published == {"gateway": ["${STOCKMANAGER_PUBLISH:-5000}:5000"]}
    resolved = interpolate(compose, TEST_ENV)["services"]["gateway"]["ports"]
    assert resolved == ["5000:5000"]


def test_gateway_finds_every_service_by_name(compose: dict[str, Any]) -> None:
    env = compose["services"]["gateway"]["environment"]
    for info in registry.SERVICES:
        assert env[info.url_setting] == f"http://{info.name}:{info.port}"


def test_migrate_runs_migrations_then_creates_root_once(compose: dict[str, Any]) -> None:
    migrate = compose["services"]["migrate"]
    assert migrate["entrypoint"] == ["/bin/sh", "-ec"]
    assert migrate["command"] == ["stockmanager migrate && stockmanager bootstrap-root"]
    assert migrate["restart"] == "no"
    assert migrate["healthcheck"] == {"disable": True}
    assert set(migrate["depends_on"]) == {"postgres", "redis"}
    root_password = "${STOCKMANAGER_ROOT_PASSWORD:?STOCKMANAGER_ROOT_PASSWORD is required}"
    assert migrate["environment"]["STOCKMANAGER_ROOT_PASSWORD"] == root_password
    others = [
        n
        for n, s in compose["services"].items()
        if "STOCKMANAGER_ROOT_PASSWORD" in (s.get("environment") or {}) and n != "migrate"
    ]
    assert others == [], "only the one-shot bootstrap needs the root password"


def test_postgres_and_redis_keep_their_data_and_report_health(compose: dict[str, Any]) -> None:
    postgres, redis = compose["services"]["postgres"], compose["services"]["redis"]
    assert postgres["image"] == "postgres:16"
    assert postgres["volumes"] == ["postgres-data:/var/lib/postgresql/data"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert redis["image"] == "redis:7"
    assert redis["volumes"] == ["redis-data:/data"]
    assert redis["command"][:3] == ["redis-server", "--appendonly", "yes"]
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])
    assert set(compose["volumes"]) == {"postgres-data", "redis-data"}


def test_secret_values_are_never_written_in_the_file(compose: dict[str, Any]) -> None:
    common = compose["x-common-env"]
    assert common["STOCKMANAGER_INTERNAL_SECRET"].startswith("${STOCKMANAGER_INTERNAL_SECRET:?")
    assert "${POSTGRES_PASSWORD:?" in common["DATABASE_URL"]
    users = compose["services"]["users"]["environment"]
    assert users["STOCKMANAGER_SMTP_PASSWORD"] is None  # passed through when set, else unset
