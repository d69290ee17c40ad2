"""The config file, environment overrides, `compass init` and the mcpServers JSON import."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

import pytest

from compass_tui.cli import main as cli_main
from compass_tui.config import (
    ConfigError,
    McpServerConfig,
    SecretMissing,
    default_config_path,
    import_mcp_json,
    load_config,
    starter_config,
)


def write(tmp_path, text: str, name: str = "config.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    cfg = load_config()
    assert cfg.mcp_servers == {}
    assert cfg.theme == "dark"
    assert cfg.budget.to_budget().max_queries == 2000
    assert default_config_path() == tmp_path / "compass" / "config.toml"


def test_reads_servers_as_other_mcp_clients_write_them(tmp_path, monkeypatch):
    p = write(
        tmp_path,
        """
theme = "light"
baseline_s = 1800
grafana_url = "https://grafana.example"
[budget]
max_usd = 1.5
[models]
postmortem = "ollama/llama3.1"
[mcp_servers.grafana]
command = "mcp-grafana"
args = ["-t", "stdio"]
env = { GRAFANA_URL = "http://g:3000", GRAFANA_SERVICE_ACCOUNT_TOKEN = "${GRAFANA_TOKEN}" }
loki_datasource_uid = "loki-prod"
[mcp_servers.remote]
url = "http://127.0.0.1:8000/mcp"
bearer_token_env_var = "REMOTE_TOKEN"
headers = { X-Org = "${ORG}" }
""",
    )
    cfg = load_config(p)
    assert cfg.theme == "light" and cfg.baseline_s == 1800 and cfg.budget.max_usd == 1.5
    assert cfg.models.for_role("postmortem") == "ollama/llama3.1" and cfg.models.for_role("chat") is None
    g = cfg.mcp_servers["grafana"]
    assert g.transport == "stdio" and g.args == ["-t", "stdio"] and g.loki_datasource_uid == "loki-prod"
    r = cfg.mcp_servers["remote"]
    assert r.transport == "http"
    # secrets resolve from the environment only when asked, never stored in the model
    monkeypatch.setenv("GRAFANA_TOKEN", "glsa_secret_value")
    monkeypatch.setenv("REMOTE_TOKEN", "tok-123")
    monkeypatch.setenv("ORG", "7")
    assert g.env["GRAFANA_SERVICE_ACCOUNT_TOKEN"] == "${GRAFANA_TOKEN}"
    assert g.resolved_env("grafana")["GRAFANA_SERVICE_ACCOUNT_TOKEN"] == "glsa_secret_value"
    assert r.resolved_headers("remote") == {"X-Org": "7", "Authorization": "Bearer tok-123"}
    assert "glsa_secret_value" in g.secret_values("grafana")


def test_missing_secret_names_the_variable_not_a_value(monkeypatch):
    monkeypatch.delenv("NOPE_TOKEN", raising=False)
    s = McpServerConfig(command="x", env={"TOKEN": "${NOPE_TOKEN}"})
    with pytest.raises(SecretMissing, match=r"mcp_servers.g.env.TOKEN refers to \$\{NOPE_TOKEN\}"):
        s.resolved_env("g")


def test_environment_overrides_file_and_flags_override_both(tmp_path, monkeypatch):
    p = write(tmp_path, 'theme = "light"\n[budget]\nmax_queries = 10\nmax_usd = 2.0\n')
    monkeypatch.setenv("COMPASS_THEME", "high-contrast")
    monkeypatch.setenv("COMPASS_BUDGET__MAX_QUERIES", "5")
    cfg = load_config(p)
    assert cfg.theme == "high-contrast"
    assert cfg.budget.max_queries == 5 and cfg.budget.max_usd == 2.0  # nested keys merge
    assert load_config(p, overrides={"theme": "dark"}).theme == "dark"


@pytest.mark.parametrize(
    "text, expected",
    [
        ('theme = "blue"', r"config.toml: theme: expected one of 'dark', 'light' or 'high-contrast' \(got 'blue'\)"),
        ("[budget]\nmax_usd = \"lots\"", r"config.toml: budget.max_usd: .*number"),
        ("[mcp_servers.x]\nargs = []", r"config.toml: mcp_servers.x: needs either command \(stdio\) or url"),
        ("[mcp_servers.x]\ncommand = \"a\"\nurl = \"http://b\"", r"mcp_servers.x: has both command and url"),
        ("[mcp_servers.x]\ncommand = \"a\"\nbogus = 1", r"config.toml: mcp_servers.x.bogus: unknown key"),
        ("colour = 1", r"config.toml: colour: unknown key"),
        ("theme = \n", r"config.toml:1: invalid TOML"),
    ],
)
def test_bad_config_is_one_line_naming_file_and_key(tmp_path, monkeypatch, text, expected):
    monkeypatch.delenv("COMPASS_THEME", raising=False)
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert "\n" not in msg
    assert str(p) in msg
    import re

    assert re.search(expected, msg), msg


def test_secret_values_are_not_echoed_in_errors(tmp_path):
    p = write(tmp_path, '[mcp_servers.x]\ncommand = "a"\nenv = { GRAFANA_TOKEN = 81234567 }\n')
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "mcp_servers.x.env.GRAFANA_TOKEN" in str(e.value)
    assert "81234567" not in str(e.value)


def test_explicit_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.toml")


def test_starter_config_loads_and_names_both_stacks(tmp_path):
    text = starter_config()
    data = tomllib.loads(text)
    assert data["mcp_servers"]["grafana"]["command"] == "mcp-grafana"
    assert data["mcp_servers"]["grafana"]["args"][:2] == ["-t", "stdio"]
    assert "--disable-write" in data["mcp_servers"]["grafana"]["args"]
    assert data["mcp_servers"]["grafana"]["env"]["GRAFANA_SERVICE_ACCOUNT_TOKEN"] == "${GRAFANA_TOKEN}"
    assert "PROMETHEUS_URL" in data["mcp_servers"]["prometheus"]["env"]
    cfg = load_config(write(tmp_path, text))
    assert set(cfg.enabled_servers()) == {"grafana"}


def test_init_writes_a_file_that_loads_and_refuses_to_overwrite(tmp_path, capsys):
    target = tmp_path / "c" / "config.toml"
    assert cli_main(["init", "--config", str(target)]) == 0
    assert load_config(target).mcp_servers["grafana"].command == "mcp-grafana"
    assert cli_main(["init", "--config", str(target)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli_main(["init", "--config", str(target), "--force"]) == 0


def test_import_mcp_json_keeps_servers_and_never_stores_literal_secrets(tmp_path, capsys):
    src = tmp_path / "mcp.json"
    src.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "grafana": {
                        "command": "mcp-grafana",
                        "args": ["-t", "stdio"],
                        "env": {"GRAFANA_URL": "http://g:3000", "GRAFANA_SERVICE_ACCOUNT_TOKEN": "glsa_literal_secret"},
                    },
                    "remote": {"url": "http://127.0.0.1:9000/mcp", "headers": {"Authorization": "Bearer abc.def"}},
                }
            }
        )
    )
    servers, notes = import_mcp_json(src)
    assert servers["grafana"]["env"]["GRAFANA_SERVICE_ACCOUNT_TOKEN"] == "${GRAFANA_SERVICE_ACCOUNT_TOKEN}"
    assert servers["grafana"]["grafana_url"] == "http://g:3000"
    assert any("GRAFANA_SERVICE_ACCOUNT_TOKEN" in n for n in notes)

    target = tmp_path / "config.toml"
    assert cli_main(["init", "--config", str(target), "--import-mcp-json", str(src)]) == 0
    written = target.read_text()
    assert "glsa_literal_secret" not in written and "abc.def" not in written
    cfg = load_config(target)
    assert set(cfg.enabled_servers()) == {"grafana", "remote"}  # the examples are commented out
    assert cfg.mcp_servers["remote"].url == "http://127.0.0.1:9000/mcp"
    assert "export" in capsys.readouterr().out


def test_import_mcp_json_bad_input_is_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"mcpServers": {"x": {"args": []}}}')
    with pytest.raises(ConfigError, match=r"bad.json: mcpServers.x: expected command or url"):
        import_mcp_json(bad)
    bad.write_text("{nope")
    with pytest.raises(ConfigError, match=r"bad.json:1: not valid JSON"):
        import_mcp_json(bad)


def test_doctor_with_bad_config_exits_2_with_one_line(tmp_path):
    p = write(tmp_path, 'theme = "blue"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "compass_tui.cli", "doctor", "--config", str(p)],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "theme" in proc.stderr and str(p) in proc.stderr
    assert "Traceback" not in proc.stderr
