"""How the editor stores text (no Textual import: the loop controller needs it too)."""

from __future__ import annotations

# What str.splitlines splits on besides "\n".
_OTHER_LINE_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def editor_form(text: str) -> str:
    """``text`` as the TextArea stores it: every line break ("\\r\\n", "\\r", "\\x1c", "\\u2028", …) becomes "\\n".

    The document splits lines with ``str.splitlines``; normalising first keeps ``editor.text`` and the
    story + pending strings the app hands it equal, character for character.
    """
    if not any(ch in text for ch in _OTHER_LINE_BREAKS):  # the usual case: memchr speed, ~0.1 ms a megabyte
        return text
    out: list[str] = []
    for part in text.splitlines(keepends=True):
        body = part.splitlines()[0]
        out.append(body + "\n" if len(body) < len(part) else body)
    return "".join(out)
