"""The deployment in deploy/ names what the product really reads and runs.

A copy of deploy/ is what a team starts from: a typo in an environment
variable, a queue the settings do not route to, or a process missing from one
of the three descriptions would go unnoticed until production.
"""

import re
import tomllib

import yaml

from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
PROCESSES = {"web", "worker", "control", "beat"}


def _settings_env_names() -> set[str]:
    source = (ROOT / "config" / "settings.py").read_text()
    return set(
        re.findall(r"(?:environ\.get|env_\w+)\(\s*\"([A-Z][A-Z0-9_]*)\"", source)
    )


def _default(name: str) -> str:
    """The default config/settings.py gives ``name`` (the suite's own
    environment overrides the value itself)."""
    source = (ROOT / "config" / "settings.py").read_text()
    return re.search(rf'environ\.get\("{name}", "([^"]+)"\)', source).group(1)


def _queues(command: str) -> set[str]:
    match = re.search(r"-Q\s+(\S+)", command)
    return set(match.group(1).split(",")) if match else set()


def test_the_example_environment_names_only_settings_that_exist():
    names = _settings_env_names()
    example = (DEPLOY / "importhub.env.example").read_text().splitlines()
    keys = {line.split("=", 1)[0] for line in example if "=" in line and line[0] != "#"}
    assert keys, "the example environment is empty"
    assert keys <= names, f"not read by config/settings.py: {sorted(keys - names)}"


def test_compose_runs_every_process_on_the_settings_queues():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert PROCESSES | {"postgres", "redis", "rabbitmq", "migrate"} <= set(services)
    commands = {name: " ".join(services[name]["command"]) for name in PROCESSES}
    assert _queues(commands["worker"]) == {_default("IMPORTHUB_TASK_QUEUE")}
    assert _queues(commands["control"]) == {_default("IMPORTHUB_CONTROL_QUEUE")}
    assert "beat" in commands["beat"] and commands["web"].startswith(
        "gunicorn config.wsgi"
    )
    env = services["worker"]["env_file"]
    assert (DEPLOY / f"{env}.example").exists()


def test_procfile_and_systemd_run_the_same_processes():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    procfile = dict(
        line.split(": ", 1)
        for line in (DEPLOY / "Procfile").read_text().splitlines()
        if line.strip()
    )
    assert PROCESSES <= set(procfile)
    units = {
        "web": "importhub-web.service",
        "worker": "importhub-worker@.service",
        "control": "importhub-control.service",
        "beat": "importhub-beat.service",
    }
    for process, unit in units.items():
        text = (DEPLOY / "systemd" / unit).read_text()
        exec_start = re.search(r"^ExecStart=(\S+/)?(.*)$", text, re.M).group(2)
        compose_command = " ".join(compose[process]["command"])
        # The same program, the same queues, in all three descriptions.
        for command in (procfile[process], exec_start):
            assert command.split()[0] == compose_command.split()[0], (process, command)
            assert _queues(command) == _queues(compose_command), (process, command)


def test_the_image_installs_what_the_web_command_runs():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(req.startswith("gunicorn") for req in extras["server"])
    assert '".[server]"' in (DEPLOY / "Dockerfile").read_text()
