"""The analysis notebooks run top to bottom against a real (tiny) sweep and draw every plot."""

from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ["pareto_front", "token_categories", "ratio_placement", "learning_curves"]


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module) -> str:
    """The python3 kernel; its spec is installed into a temporary folder if none is found.

    jupyter_client starts a spec whose command is plain ``python`` with this interpreter, so the
    kernel sees the same virtual environment as the tests.
    """
    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        from ipykernel.kernelspec import install

        prefix = tmp_path_factory.mktemp("jupyter")
        install(prefix=str(prefix))
        monkeypatch_module.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    return "python3"


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_notebooks_are_stored_clean_and_read_the_sweep_from_the_environment():
    for name in NOTEBOOKS:
        nb = _read(name)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), name
        assert "SWEEP_DIR = " in code[0].source and "ARCHSEARCH_SWEEP_DIR" in code[0].source
        assert any("plot" in c.metadata.get("tags", []) for c in code), name


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_and_draws_every_plot(name, tiny_sweep, kernel, monkeypatch):
    monkeypatch.setenv("ARCHSEARCH_SWEEP_DIR", str(tiny_sweep))
    # Whatever the environment says, figures must come back as images (the inline backend).
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = _read(name)
    client = NotebookClient(nb, kernel_name=kernel, timeout=300,
                            resources={"metadata": {"path": str(ROOT / "notebooks")}})
    client.execute()  # raises CellExecutionError, with the traceback, if any cell fails
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert not [o for o in cell.outputs if o.output_type == "error"]
        if "plot" in cell.metadata.get("tags", []):
            images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
            assert images, f"{name}: plot cell drew no image:\n{cell.source}"
