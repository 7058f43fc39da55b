"""The command line's shape: one module per verb, all listed once, none importing heavy packages."""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from archsearch import cli
from archsearch.cli.common import run_verb

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "ray", "pandas", "numpy", "scipy", "transformers")


def test_every_verb_module_is_registered_under_its_own_name():
    shared = {"__init__", "__main__", "common"}
    modules = {p.stem for p in (ROOT / "archsearch/cli").glob("*.py")} - shared
    assert [verb.NAME for verb in cli.VERBS] == [
        "validate", "patterns", "tag", "compare", "sweep", "resume", "report", "scale",
        "supernet", "recommend", "export"]
    assert {verb.__name__.rsplit(".", 1)[-1] for verb in cli.VERBS} == modules
    assert all(verb.__name__.endswith("." + verb.NAME) for verb in cli.VERBS)


def test_help_and_validate_import_neither_torch_nor_ray():
    # a fresh interpreter: the test session itself has imported everything already
    script = ("import sys\n"
              "from archsearch.cli import main\n"
              "main(['validate', sys.argv[1]])\n"
              f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n")
    run = subprocess.run([sys.executable, "-c", script,
                          str(ROOT / "search_spaces/quickstart.yaml")],
                         capture_output=True, text=True, check=False, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == "[]"


def test_kill_stops_a_long_run_like_ctrl_c(capsys):
    assert {verb.NAME for verb in cli.VERBS if verb.STOPPED_BY_SIGTERM} == {
        "sweep", "resume", "scale", "supernet"}

    def killed(args: argparse.Namespace) -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)  # the handler raises long before this ends
        return 0

    before = signal.getsignal(signal.SIGTERM)
    long_run = SimpleNamespace(NAME="sweep", STOPPED_BY_SIGTERM=True, run=killed)
    assert run_verb(long_run, argparse.Namespace()) == 130
    assert capsys.readouterr().err == "archsearch sweep: interrupted\n"
    assert signal.getsignal(signal.SIGTERM) is before  # pytest's own handling is back
