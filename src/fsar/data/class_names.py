"""Class names as text, for methods that read them (CLIP-FSAR's prompts ``"a photo of {name}"``).

Every split file names each video's class (``class/video``); a clip batch carries those names
(``ClipBatch.class_names``) and a split its class list by label (``SplitClips.class_names``). Where they come
from, per benchmark (split files as shipped by TRX and TA2N; /work/shared/specs/ta2n.md §7):

============ =========================================================================================
benchmark    class names in the split files
============ =========================================================================================
ucf101       UCF101's folder names, CamelCase (``ApplyEyeMakeup``, ``BlowingCandles``): used verbatim.
hmdb51       HMDB51's folder names, lower case with underscores (``brush_hair``, ``kick_ball``): verbatim;
             CLIP-FSAR's configs keep the underscores (``"a photo of draw_sword"``).
kinetics100  Kinetics' class names with spaces (``air drumming``, ``hurling (sport)``): verbatim.
ssv2_small   TRX's CMN lists hold the SSv2 label text (``Pretending to take something from somewhere``):
             verbatim. TA2N's CMN lists hold only tokens (``train24``): a name map is needed.
ssv2_full    TRX's and TA2N's OTAM lists hold only tokens (``train8``, ``test18``; the number is the split-local
             id of ``classInd.json``): a name map is needed.
synthetic    ``fsar synth`` class names (``c017_left_then_up``): verbatim.
============ =========================================================================================

A **name map** is a JSON object ``{"<class as in the split file>": "<text>", ...}``, e.g.
``{"train8": "Pouring something into something", ...}``, made from the SSv2 label list and the split's class ids
(CLIP-FSAR's configs list the names in class-id order as ``TRAIN.CLASS_NAME`` / ``TEST.CLASS_NAME``). Classes not
in the map keep their own name. A name that is only a split token (``train24``, ``val3``, ``test18``) with no
map entry is refused: a prompt "a photo of test18" would run but carry no meaning.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from fsar.errors import DataLayoutError

# The class tokens of the SSv2 split files (TA2N's lists, TRX's OTAM lists).
SPLIT_TOKEN = re.compile(r"^(train|val|test)\d+$")


def read_class_name_map(path: str | os.PathLike[str]) -> dict[str, str]:
    """A name map file: a JSON object of non-empty strings ``{split-file class: text}``."""
    path = Path(path)
    if not path.is_file():
        raise DataLayoutError(f'{path}: class-name map not found; pass a JSON file {{"train8": "text", ...}}')
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataLayoutError(f"{path}: not a valid JSON class-name map ({exc})") from None
    if not isinstance(data, dict):
        raise DataLayoutError(f"{path}: expected a JSON object {{class: text}}, got {type(data).__name__}")
    bad = [k for k, v in data.items() if not isinstance(v, str) or not v.strip()]
    if bad:
        raise DataLayoutError(f"{path}: classes {bad[:10]} map to an empty or non-string name")
    return dict(data)


def class_texts(
    names: Sequence[str], name_map: Mapping[str, str] | None = None, source: str = "class-name map"
) -> list[str]:
    """The text of each class name: ``name_map[name]`` where given, else the name itself; a bare split token
    (``test18``) without an entry is an error naming it and saying how to fix it."""
    name_map = name_map or {}
    out = []
    tokens = []
    for name in names:
        text = name_map.get(name, name)
        if SPLIT_TOKEN.match(text):
            tokens.append(name)
        out.append(text)
    if tokens:
        raise DataLayoutError(
            f"classes {sorted(set(tokens))[:10]} are split-file tokens, not names, and the {source} does not "
            'name them; give a JSON map {"train8": "Pouring something into something", ...} '
            "(see fsar.data.class_names) or use split files that spell out the SSv2 label text (TRX's CMN lists)"
        )
    return out
