"""Secrets are secrets: resources hold the names of environment variables, the UI shows no value,
a missing secret fails closed and names its variable (connectors/secrets.py)."""

from __future__ import annotations

import json
import os
import subprocess

import dagster as dg
import pytest
import yaml

from connectors.secrets import AlertSalt, ExportKeyMissing, ExportKeys, SecretMissing, env_secret
from tests.conftest import DEMO_REGION, PROJECT
from tests.demo_region import VENV_BIN, stop_process_group
from tests.webserver import free_port, graphql, wait_for_code_location

# Distinct values that must appear nowhere in what the UI serves.
SECRETS = {
    "SWV_WAREHOUSE_URL": "postgresql://swv:pw-warehouse-51c7@db.invalid:5432/swv",
    "SWV_TOKEN_DE_WOLDEN": "tok-dewolden-0d8e",
    "SWV_TOKEN_WESTERVELD": "tok-westerveld-93aa",
    "SWV_TOKEN_VVA": "tok-vva-6b21",
    "SWV_UPLOAD_TOKEN_GM0118": "tok-upload-hoogeveen-4f02",
    "SWV_ALERT_SALT": "salt-7e9d13",
    **{f"SWV_EXPORT_KEY_{code}": f"key-{code}-a5c3" for code in ("GM0118", "GM0119", "GM1690", "GM1701", "GM1708")},
}
# The secret-holding parts of the definitions: their values must be variable names, never values.
SECRET_HOLDERS = {"warehouse": "url", "json_api": "tokens", "export_uploads": "tokens", "export_keys": "per_gemeente",
                  "alert_salt": "salt"}


@pytest.fixture
def region_with_a_receiver(tmp_path):
    """The demo region, with an HTTPS receiver for Hoogeveen's exports whose token is a secret too."""
    region = yaml.safe_load(DEMO_REGION.read_text(encoding="utf-8"))
    region["exports"] = {"upload": {"GM0118": {"url": "https://upload.hoogeveen.example/swv",
                                               "token_env": "SWV_UPLOAD_TOKEN_GM0118"}}}
    path = tmp_path / "region.yaml"
    path.write_text(yaml.safe_dump(region, allow_unicode=True), encoding="utf-8")
    return path


def test_every_secret_enters_the_definitions_as_the_name_of_its_variable(region_with_a_receiver, monkeypatch):
    from pipelines.definitions import build_definitions

    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    resources = build_definitions(region_with_a_receiver).resources
    named = {}
    for resource, field in SECRET_HOLDERS.items():
        value = getattr(resources[resource], field)
        for secret in value.values() if isinstance(value, dict) else [value]:
            assert isinstance(secret, dg.EnvVar), f"{resource}.{field} holds a value, not a variable"
            named[secret.env_var_name] = resource
    assert set(named) == set(SECRETS)


def test_without_swv_warehouse_url_the_warehouse_is_the_sqlite_file_under_var(var_dir):
    from pipelines.definitions import build_definitions

    assert build_definitions(DEMO_REGION).resources["warehouse"].url == f"sqlite:///{var_dir / 'warehouse.sqlite'}"


def test_an_empty_variable_counts_as_not_set(monkeypatch):
    monkeypatch.setenv("SWV_ALERT_SALT", "  ")
    assert env_secret("SWV_ALERT_SALT") is None


def test_a_missing_export_key_names_its_variable():
    with pytest.raises(ExportKeyMissing, match="SWV_EXPORT_KEY_GM0118"):
        ExportKeys(per_gemeente={"GM0119": "meppel-secret"}).key("GM0118")


def test_the_export_key_comes_from_the_municipalitys_own_variable(monkeypatch):
    monkeypatch.setenv("SWV_EXPORT_KEY_GM0118", "hoogeveen-secret")
    monkeypatch.setenv("SWV_EXPORT_KEY_GM0119", "meppel-secret")
    with dg.build_resources({"keys": ExportKeys.from_env(["GM0118", "GM0119"])}) as resources:
        assert resources.keys.key("GM0119") == b"meppel-secret"


def test_there_is_no_default_alert_salt(monkeypatch):
    monkeypatch.delenv("SWV_ALERT_SALT", raising=False)
    with pytest.raises(SecretMissing, match="SWV_ALERT_SALT"):
        AlertSalt.from_env().value()


def test_an_unresolved_variable_is_never_taken_for_its_value():
    with pytest.raises(SecretMissing, match="SWV_ALERT_SALT was not resolved"):
        AlertSalt(salt=dg.EnvVar("SWV_ALERT_SALT")).value()


RESOURCES_AND_METADATA = """{ workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError {
    ... on RepositoryLocation { repositories {
        allTopLevelResourceDetails { name configuredValues { key value type } }
        assetNodes { assetKey { path } metadataEntries { label __typename
            ... on TextMetadataEntry { text } ... on JsonMetadataEntry { jsonString }
            ... on MarkdownMetadataEntry { mdStr } ... on UrlMetadataEntry { url } } } } } } } } } }"""


@pytest.mark.slow
def test_the_ui_shows_the_names_of_the_secrets_and_none_of_their_values(tmp_path, region_with_a_receiver):
    port, log = free_port(), tmp_path / "webserver.log"
    environment = {**os.environ, **SECRETS, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
                   "SWV_REGION_FILE": str(region_with_a_receiver), "SWV_VAR_DIR": str(tmp_path / "var"),
                   "DAGSTER_HOME": str(tmp_path / "dagster")}
    (tmp_path / "dagster").mkdir()
    with log.open("w") as out:
        server = subprocess.Popen(["dagster-webserver", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                                  cwd=PROJECT, env=environment, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_code_location(base, server, log)
        data = graphql(base, RESOURCES_AND_METADATA)
    finally:
        stop_process_group(server)
    served = json.dumps(data)
    leaked = sorted(name for name, value in SECRETS.items() if value in served)
    assert not leaked and "pw-warehouse" not in served, f"the UI shows the value of {leaked or 'the password'}"

    [location] = data["workspaceOrError"]["locationEntries"]
    [repository] = location["locationOrLoadError"]["repositories"]
    configured = {(resource["name"], value["key"]): value for resource in repository["allTopLevelResourceDetails"]
                  for value in resource["configuredValues"]}
    assert configured[("warehouse", "url")] == {"key": "url", "value": "SWV_WAREHOUSE_URL", "type": "ENV_VAR"}
    assert configured[("alert_salt", "salt")]["type"] == "ENV_VAR"
    shown_names = " ".join(value["value"] for value in configured.values())
    assert all(name in shown_names for name in SECRETS), "every secret is listed by the name of its variable"
    assert len(repository["assetNodes"]) > 10  # the metadata of every asset was searched too
