"""`netbed doctor --json` prints JSON whatever the outcome, so a script can always read it."""

from __future__ import annotations

import json

from click.testing import CliRunner

from netbed import backend, cli


def test_a_set_up_step_that_cannot_be_done_is_a_finding_in_the_json(monkeypatch):
    def cannot(_report):
        raise backend.EngineError("the Docker Engine package needs root: run `sudo netbed doctor --fix`")

    monkeypatch.setattr(backend, "fix", cannot)
    monkeypatch.setattr(backend, "diagnose", lambda: [backend.Finding("docker CLI", True, "/usr/bin/docker")])
    done = CliRunner().invoke(cli.cli, ["doctor", "--fix", "--json"])
    assert done.exit_code == 1
    findings = json.loads(done.stdout)
    assert findings[-1] == {"name": "set-up", "ok": False, "remedy": "see the detail",
                            "detail": "the Docker Engine package needs root: run `sudo netbed doctor --fix`"}
