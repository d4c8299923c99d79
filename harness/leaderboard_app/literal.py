"""Text that people other than the board's operator wrote (submission, variant, project and entry-point names,
errors, hardware classes, track cards from plugins, dataset and metric names), made to show literally wherever
Streamlit renders Markdown: titles, headers, captions, `st.markdown`, alerts and widget or expander labels.

Streamlit reads all of those as Markdown with its own extensions (`:material/icon:`, `:red[...]`, emoji
shortcodes, `$math$`) and GitHub's (bare URLs and e-mail addresses become links); a submission named
`[x](https://...)` would otherwise be a live link on the board. Text that is drawn as text already needs
nothing: `st.dataframe` cells and headers, `st.code`, options of a select box, the components' text nodes
(`table.js`, `picker.js`) and the charts' SVG text and tooltips (which vega-tooltip escapes).
"""

from __future__ import annotations

import re

# Every ASCII punctuation character: CommonMark lets a backslash escape each of them, and escaping all of them
# also breaks Streamlit's own syntax (`:material/`, `:color[`, `:shortcode:`, `$`) before it is recognised.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# GitHub's autolinks of bare `http(s)://...`, `www.` and `name@host.domain` are found in the parsed text, where
# the escapes are gone; an invisible word joiner right after `://`, `www` and such an `@` keeps them from
# matching. Only there: `name@variant` and `track@v2` stay as they are, and a search of the page finds them.
_AUTOLINK = re.compile(r"(://|www(?=\.)|@(?=[-\w]+\.[-\w]))", re.IGNORECASE)
WORD_JOINER = "\u2060"


def literal(text: object) -> str:
    """`text` as Markdown that renders as exactly its characters (plus invisible word joiners where a bare URL
    or address would be linked), on one line: every ASCII punctuation mark backslash-escaped, runs of
    whitespace (newlines included: a line break could start a list, a heading or a code block) folded to one
    space, as HTML shows them anyway. `None` shows as `-`."""
    if text is None:
        return "-"
    one_line = " ".join(str(text).split())
    return _PUNCTUATION.sub(r"\\\1", _AUTOLINK.sub(rf"\1{WORD_JOINER}", one_line))
