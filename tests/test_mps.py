"""CUDA MPS for trials sharing a GPU (``resources.mps``): started before the sweep's Ray, seen by
the processes started inside, quit and undone afterwards, and refused with one line where it
cannot work. A stand-in ``nvidia-cuda-mps-control`` on PATH records what it was asked."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from archsearch.errors import ArchsearchError
from archsearch.mps import CONTROL, MpsError, cuda_mps
from archsearch.space import SearchSpace
from archsearch.sweep.runner import SweepOptions, _mps_for

SPACE = """
name: mps
model: {depth: 2, d_model: 16, n_heads: 2}
patterns: {candidates: ["AG"]}
training: {tokens: 640, batch_size: 2}
data: {seq_len: 16}
objectives: [{metric: semantic_loss}]
resources: {gpus: 0.25, mps: true}
"""


def fake_control(folder: Path, exit_code: int = 0) -> Path:
    """A stand-in daemon: logs its arguments (or, with none, the command read from stdin) and
    the pipe folder it was given; ``exit_code`` != 0 fails like a daemon that cannot start."""
    log = folder / "calls.log"
    script = folder / CONTROL
    script.write_text(
        "#!/bin/sh\n"
        f'if [ $# -eq 0 ]; then read cmd; echo "stdin:$cmd" >> {log}; '
        f'else echo "args:$* pipe:$CUDA_MPS_PIPE_DIRECTORY" >> {log}; fi\n'
        f'[ {exit_code} -eq 0 ] || echo "cannot open /dev/nvidia-mps: permission denied" >&2\n'
        f"exit {exit_code}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return log


@pytest.fixture
def on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for name in ("CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    # a machine-wide daemon of the test machine (if any) must not count
    monkeypatch.setattr("archsearch.mps.DEFAULT_PIPE", tmp_path / "no-system-mps")
    return bin_dir


def test_processes_started_inside_are_mps_clients_and_all_is_undone_after(on_path: Path) -> None:
    log = fake_control(on_path)
    with cuda_mps() as root:
        pipe = os.environ["CUDA_MPS_PIPE_DIRECTORY"]
        assert Path(pipe) == root / "pipe" and Path(pipe).is_dir()
        assert Path(os.environ["CUDA_MPS_LOG_DIRECTORY"]).is_dir()
        child = "import os; print(os.environ['CUDA_MPS_PIPE_DIRECTORY'])"
        seen = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                              check=True).stdout.strip()
        assert seen == pipe  # what Ray's raylet and its trial workers inherit
    assert log.read_text().splitlines() == [f"args:-d pipe:{pipe}", "stdin:quit"]
    assert "CUDA_MPS_PIPE_DIRECTORY" not in os.environ and not root.exists()


def test_a_missing_daemon_is_one_line_naming_the_field(on_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(on_path))  # nothing but the empty folder
    with pytest.raises(MpsError) as err, cuda_mps():
        pass
    message = str(err.value)
    assert message.startswith("resources.mps:") and CONTROL in message and "\n" not in message


def test_a_daemon_that_will_not_start_says_why_and_leaves_nothing(on_path: Path) -> None:
    log = fake_control(on_path, exit_code=1)
    with pytest.raises(MpsError, match="permission denied") as err, cuda_mps():
        pytest.fail("the block must not run without a daemon")
    assert "\n" not in str(err.value) and "stdin:quit" not in log.read_text()
    assert "CUDA_MPS_PIPE_DIRECTORY" not in os.environ


def test_the_sweep_starts_mps_for_its_own_ray_only(on_path: Path) -> None:
    space = SearchSpace.from_text(SPACE, "mps.yaml")
    log = fake_control(on_path)
    with _mps_for(space, SweepOptions()):
        assert os.environ["CUDA_MPS_PIPE_DIRECTORY"]
    assert log.read_text().count("args:-d") == 1
    with pytest.raises(ArchsearchError, match="on every node") as err:
        _mps_for(space, SweepOptions(address="ray://head:10001"))
    assert "\n" not in str(err.value)
    off = SearchSpace.from_text(SPACE.replace("mps: true", "mps: false"), "mps.yaml")
    with _mps_for(off, SweepOptions()):
        assert "CUDA_MPS_PIPE_DIRECTORY" not in os.environ


def test_mps_without_gpu_trials_is_refused_when_the_space_is_read() -> None:
    with pytest.raises(ArchsearchError, match=r"mps.yaml:\d+: resources.mps: .*use none"):
        SearchSpace.from_text(SPACE.replace("gpus: 0.25, ", ""), "mps.yaml")


def test_a_daemon_already_serving_the_machine_is_left_alone(on_path: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    log = fake_control(on_path)
    pipe = tmp_path / "system-mps"
    pipe.mkdir()
    (pipe / "control").touch()  # the daemon's control socket
    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", str(pipe))
    with pytest.raises(MpsError, match="already serves this machine") as err, cuda_mps():
        pass
    assert str(pipe) in str(err.value) and not log.exists()
    assert os.environ["CUDA_MPS_PIPE_DIRECTORY"] == str(pipe)
