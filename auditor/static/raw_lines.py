"""radon's raw line counts (``radon raw``) in one tokenizer pass.

``radon.raw.analyze`` strips every line and re-tokenizes a growing buffer, one line more each time,
until the buffer tokenizes cleanly. A statement or string spanning n lines therefore costs O(n²)
tokens: a 53 kB numpy code generator takes 7 s. Those buffers always end where a single pass over
the same stripped lines reaches a clean state (no open bracket, string or backslash continuation),
so hepaudit tokenizes once, cuts the token stream at those points and applies radon's own counting
rules to each piece. The result is radon's ``Module`` tuple, equal field by field (tested against
radon on real code); sources that radon's loop treats specially (error tokens, a statement left
open at the end) are handed to radon itself.
"""

from __future__ import annotations

import io
import tokenize

from radon import raw as radon_raw

_NEWLINES = (tokenize.NL, tokenize.NEWLINE)
_OPEN = {"(", "[", "{"}
_CLOSE = {")", "]", "}"}
_END = tokenize.TokenInfo(tokenize.ENDMARKER, "", (0, 0), (0, 0), "")


def _chunks(tokens: list[tokenize.TokenInfo]):
    """Yield (first_row, last_row, tokens) for each piece radon would tokenize on its own."""
    depth = 0
    start_index = 0
    first_row = 1
    for index, token in enumerate(tokens):
        if token.type == tokenize.OP:
            if token.string in _OPEN:
                depth += 1
            elif token.string in _CLOSE:
                depth -= 1
        elif token.type in _NEWLINES and depth == 0:
            row = token.start[0]
            yield first_row, row, tokens[start_index:index + 1]
            start_index = index + 1
            first_row = row + 1


def analyze(source: str) -> radon_raw.Module:
    """Same result as ``radon.raw.analyze(source)``, in linear time."""
    lines = [line.strip() for line in source.splitlines()]
    text = "\n".join(lines)
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return radon_raw.analyze(source)
    if any(t.type == tokenize.ERRORTOKEN for t in tokens):
        return radon_raw.analyze(source)
    tokens = [t for t in tokens if t.type not in (tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT)]
    lloc = comments = single_comments = multi = blank = sloc = 0
    covered = 0
    for first, last, piece in _chunks(tokens):
        parsed = lines[first - 1:last]
        covered = last
        piece = piece + [_END]
        comments += sum(1 for t in piece if t.type == tokenize.COMMENT)
        if radon_raw.is_single_token(tokenize.COMMENT, piece):
            single_comments += 1
        elif radon_raw.is_single_token(tokenize.STRING, piece):
            if piece[0].start[0] == piece[0].end[0]:
                single_comments += 1
            else:
                filled = sum(1 for line in parsed if line)
                multi += filled
                blank += len(parsed) - filled
        else:
            filled = sum(1 for line in parsed if line)
            sloc += filled
            blank += len(parsed) - filled
        lloc += radon_raw._logical(piece)  # noqa: SLF001 - radon's own rule for logical lines
    if covered != len(lines):
        return radon_raw.analyze(source)  # the stream did not end cleanly: let radon decide
    loc = sloc + blank + multi + single_comments
    return radon_raw.Module(loc, lloc, sloc, comments, multi, blank, single_comments)
