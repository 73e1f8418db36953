"""A spec's text written into another folder: the data paths its train section names are relative to
the spec's folder, so they are rewritten relative to the new one (the best spec of a study is saved
in the study's output folder, and `nnspec train` takes it from there as it is)."""
from __future__ import annotations

import json
import os
from pathlib import Path

DATA_SETTINGS = ("data", "validation_data")


def relocated(text: str, path: str, source_dir: Path, target_dir: Path) -> str:
    """`text` with each relative path of its data settings that exists under `source_dir` made
    relative to `target_dir` (a string that names no file there, such as a dataset name, is kept)."""
    from ..frontend import unquote
    from ..syntax import parse

    edits = []
    for item in parse(text, path).children:
        if item.data != "train_def":
            continue
        for setting in item.children:
            key, value = setting.children
            if str(key) not in DATA_SETTINGS:
                continue
            for node in value.iter_subtrees():
                token = node.children[0] if node.data == "string" else None
                named = unquote(str(token)) if token is not None else ""
                if token is not None and named and not Path(named).is_absolute() and (source_dir / named).exists():
                    moved = os.path.relpath(source_dir.resolve() / named, target_dir.resolve())
                    edits.append((token.start_pos, token.end_pos, json.dumps(Path(moved).as_posix())))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text
