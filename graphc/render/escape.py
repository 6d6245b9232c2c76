r"""The one way a user's string (a node name, an op's ``fn``, a file path) enters
generated C source.

Everything is whitelisted, never blacklisted: printable ASCII passes (less what
can end or splice the construct), everything else is spelled out. So no name
can close a comment (``*/``), splice the next line into it (a backslash or the
trigraph ``??/`` before a newline), end a string literal (``"``, a newline) or
smuggle bytes a compiler reads differently (NUL, CR, non-ASCII).

Example::

    c_comment("relu */ x")         # 'relu * / x'
    c_comment("a\\\nb")            # 'a<U+005C><U+000A>b'
    c_string('say "hi"\n')         # '"say \\"hi\\"\\012"'  (a C literal)
    c_identifier("W1/grad", "p_")  # 'p_W1_grad'
"""

from __future__ import annotations

import re

__all__ = ["c_comment", "c_identifier", "c_string"]

#: printable ASCII, less the backslash (a line splice, an escape)
_PLAIN = frozenset(chr(c) for c in range(0x20, 0x7F)) - {"\\"}
#: pairs that open or close a comment or start a trigraph: a space goes after the first
_PAIRS = re.compile(r"\*(?=/)|/(?=\*)|\?(?=\?)")
#: kept as they are inside a string literal
_STRING_PLAIN = _PLAIN - {'"', "?"}
_STRING_ESCAPES = {"\\": "\\\\", '"': '\\"', "?": "\\?"}


def c_comment(text: str) -> str:
    """``text`` made safe inside a ``/* ... */`` comment (the delimiters not included).

    Characters other than printable ASCII, and the backslash, become ``<U+XXXX>``;
    ``*/``, ``/*`` and ``??`` get a space between their two characters.
    """
    plain = "".join(ch if ch in _PLAIN else f"<U+{ord(ch):04X}>" for ch in text)
    return _PAIRS.sub(lambda m: m.group() + " ", plain)


def c_string(text: str) -> str:
    """A C string literal, quotes included, whose bytes are ``text`` in UTF-8.

    Printable ASCII stays; ``\\``, ``"`` and ``?`` (trigraphs) are escaped; every other
    byte is a three-digit octal escape (it cannot run into a following digit, as a hex
    escape would). Lone surrogates are kept as their UTF-8-style bytes.
    """
    out = []
    for byte in text.encode("utf-8", "surrogatepass"):
        ch = chr(byte)
        if ch in _STRING_PLAIN:
            out.append(ch)
        else:
            out.append(_STRING_ESCAPES.get(ch) or f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def c_identifier(text: str, prefix: str) -> str:
    """A C identifier made from ``text``: ``prefix`` (which must start with a letter or
    ``_``) and ``text`` with every character outside ``[A-Za-z0-9_]`` replaced by ``_``.
    Two texts can give the same identifier: callers that need distinct names
    deduplicate."""
    return prefix + re.sub(r"[^A-Za-z0-9_]", "_", text)
