"""The folder an export writes into: checked before anything is written.

An export never silently replaces files: a folder that already holds files is refused unless
the user asks to overwrite (``archsearch export --overwrite``), and a path that is a file, or
lies under one, is refused with its name rather than a traceback.
"""

from __future__ import annotations

from pathlib import Path

from archsearch.errors import ArchsearchError


def check_output_folder(out: str | Path, overwrite: bool = False) -> Path:
    """``out`` as a Path, once it is known that writing into it loses nothing the user did not
    agree to; raises ArchsearchError naming the path otherwise."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ArchsearchError(f"{path} is a file, not a folder: give a folder to write into")
    if path.is_dir():
        held = sorted(p.name for p in path.iterdir())
        if held and not overwrite:
            shown = ", ".join(held[:3]) + (", ..." if len(held) > 3 else "")
            raise ArchsearchError(f"{path} already holds {len(held)} file(s) ({shown}); pick an "
                                  "empty or new folder, or pass --overwrite to replace the "
                                  "files the export writes")
        return path
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ArchsearchError(f"cannot make {path}: {parent} is a file, not a folder")
    return path
