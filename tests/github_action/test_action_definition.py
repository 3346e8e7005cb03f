"""``manifests/github-action/action.yml`` is a valid composite action whose inputs reach the
entry point and whose outputs are the ones the entry point writes."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from bots.github.action import ActionConfig

ACTION = Path(__file__).resolve().parents[2] / "manifests" / "github-action" / "action.yml"
WRITTEN_OUTPUTS = {"run_id", "state", "pr_url", "session_link"}


def test_action_yml_is_a_composite_action():
    action = yaml.safe_load(ACTION.read_text())
    assert {"name", "description", "inputs", "outputs", "runs"} <= set(action)
    assert action["runs"]["using"] == "composite"
    steps = action["runs"]["steps"]
    assert all("shell" in s for s in steps if "run" in s)
    assert steps[-1]["run"] == "oz-gateway github-action" and steps[-1]["id"] == "oz"


def test_every_input_reaches_the_entry_point():
    action = yaml.safe_load(ACTION.read_text())
    env = action["runs"]["steps"][-1]["env"]
    read = {field.alias for field in ActionConfig.model_fields.values()}
    used_inputs = set()
    for variable, expression in env.items():
        match = re.fullmatch(r"\$\{\{ inputs\.(\w+) \}\}", expression)
        assert match, f"{variable} is not set from an input"
        used_inputs.add(match.group(1))
        assert variable in read or variable in {"OZ_DOCKER_IMAGE", "OZ_SETUP_COMMANDS"}, f"{variable} is never read"
    assert used_inputs == set(action["inputs"]), "every input is passed to the step"


def test_outputs_are_the_ones_written():
    action = yaml.safe_load(ACTION.read_text())
    assert set(action["outputs"]) == WRITTEN_OUTPUTS
    for name, output in action["outputs"].items():
        assert output["value"] == f"${{{{ steps.oz.outputs.{name} }}}}"
    source = (Path(__file__).resolve().parents[2] / "bots" / "github" / "action.py").read_text()
    for name in WRITTEN_OUTPUTS:
        assert f"{name}=" in source
