"""The pytest plugin where no testbed can be made: a skip that says what is missing, a failure under CI=true."""

from __future__ import annotations

import os
import subprocess
import sys

USER_TEST = '''
def test_needs_a_testbed(testbed):
    pass
'''


def run(tmp_path, ci: bool) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_user.py").write_text(USER_TEST)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["DOCKER_HOST"] = f"unix://{tmp_path}/no-engine.sock"  # no engine answers there
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "test_user.py"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)


def test_without_an_engine_the_test_is_skipped_with_what_is_missing(tmp_path):
    done = run(tmp_path, ci=False)
    assert done.returncode == 0 and "1 skipped" in done.stdout, done.stdout
    assert "netbed cannot make a testbed here: no Docker Engine answers" in done.stdout


def test_under_ci_it_fails_instead(tmp_path):
    done = run(tmp_path, ci=True)
    assert done.returncode == 1 and "1 error" in done.stdout, done.stdout
    assert "netbed needs a working Docker Engine under CI=true: no Docker Engine answers" in done.stdout
