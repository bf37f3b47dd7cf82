"""Text that comes from outside the app (a link, a CSV header, a file name, an error that quotes them).

Streamlit renders messages as Markdown: a link parameter named `![x](http://host/p.png)`
would load an image in the visitor's browser, `[Log in](http://...)` would show a
working link inside the app's own warning. `plain` shows such text as the characters
it is, and short.
"""

from __future__ import annotations

import re

from core.config import shorten

LIMIT = 300  # characters of outside text shown in one message

# Every ASCII punctuation character may be backslash-escaped in CommonMark, which then
# shows it literally: no link, image, emphasis, HTML, math ($) or Streamlit directive (:red[...]).
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# Escaping does not stop GitHub-style autolinks (a bare URL, www.host, an e-mail address):
# Streamlit links them in the text that escaping leaves. Such words go into code spans.
_LINKABLE = re.compile(r"\S*(?:://|www\.|@)\S*", re.IGNORECASE)


def _code_span(word: str) -> str:
    """`word` as inline code, fenced with one backtick more than its longest run of them."""
    fence = "`" * (max((len(run) for run in re.findall(r"`+", word)), default=0) + 1)
    pad = " " if word.startswith("`") or word.endswith("`") else ""
    return f"{fence}{pad}{word}{pad}{fence}"


def plain(text: str, limit: int = LIMIT) -> str:
    """`text` shortened, on one line, and written so that st.markdown, st.error & co show it literally."""
    text = shorten(text, limit).replace("\r", " ").replace("\n", " ")
    out, last = [], 0
    for match in _LINKABLE.finditer(text):
        out += [_PUNCTUATION.sub(r"\\\1", text[last:match.start()]), _code_span(match.group())]
        last = match.end()
    out.append(_PUNCTUATION.sub(r"\\\1", text[last:]))
    return "".join(out)
