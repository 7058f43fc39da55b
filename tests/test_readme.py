"""The README's two set-up commands are what CI runs, and the documented verbs exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set up and run", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section, flags=re.S)


def test_readme_gives_exactly_two_setup_commands():
    commands = _readme_commands()
    assert len(commands) == 2
    assert all("\n" not in c for c in commands)
    assert "archsearch sweep search_spaces/quickstart.yaml" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_install_and_test_command():
    install, tests = _readme_commands()
    ci = (ROOT / ".ci/run").read_text().splitlines()
    install_part = install.split(" && archsearch sweep")[0]
    assert install_part in ci
    assert tests in ci
