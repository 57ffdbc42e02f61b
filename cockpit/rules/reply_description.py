"""The description a reply gives its edit: a ``Description:`` label in its markdown forms,
else the first real line of prose outside code (not an acknowledgement such as "Sure!",
not a line ending in a colon), markdown stripped and cut at a word to
MAX_DESCRIPTION_CHARS.
"""

from __future__ import annotations

import re
from typing import Optional

FILE_NAME = re.compile(r"^[\w.\-/\\]+\.\w+$")  # a file name such as train.py or src/model.py
_DESCRIPTION = re.compile(r"^\s*[#>*_\-\s]*description\s*[*_]*\s*:\s*[*_]*\s*(.*?)\s*$", re.IGNORECASE)
_ACKNOWLEDGEMENT = re.compile(r"^(sure|okay|ok|certainly|alright|great|absolutely|of course)\b[\s.!,]*$",
                              re.IGNORECASE)
MAX_DESCRIPTION_CHARS = 150


def description_label(outside: list[str]) -> Optional[str]:
    for line in outside:
        match = _DESCRIPTION.match(line)
        if match and match.group(1).strip("*_` "):
            return _clean(match.group(1))
    return None


def first_prose(outside: list[str]) -> Optional[str]:
    """The first line of prose: not blank, not a file name, not a lead-in ending in
    ':' (``Here is the change:``), not a bare acknowledgement (``Sure!``)."""
    for line in outside:
        text = _clean(line)
        if not text or FILE_NAME.match(text) or not re.search(r"[A-Za-z]", text):
            continue
        if text.endswith(":") or _ACKNOWLEDGEMENT.match(text):
            continue
        return text
    return None


def _clean(text: str) -> str:
    """Markdown stripped (headings, bullets, emphasis, inline code marks), cut to
    MAX_DESCRIPTION_CHARS at a word boundary."""
    text = re.sub(r"^\s*(#+|[-*+>]|\d+[.)])\s+", "", text).strip()
    text = re.sub(r"(?<![\w*])\*\*(?=\S)(.+?)(?<=\S)\*\*(?![\w*])", r"\1", text)
    if text.startswith("`") and text.endswith("`") and text.count("`") == 2:
        text = text[1:-1]
    text = text.strip()
    if len(text) > MAX_DESCRIPTION_CHARS:
        text = text[:MAX_DESCRIPTION_CHARS].rsplit(" ", 1)[0].rstrip(",;:") + " ..."
    return text
