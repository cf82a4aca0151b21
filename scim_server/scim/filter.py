"""Parse SCIM filters (RFC 7644 §3.4.2.2) and PATCH paths (RFC 7644 §3.5.2) into ``filter_ast``.

Tokens and grammar come from scim2-filter-parser 0.7.0 (pinned exactly): :class:`_Lexer` and
:class:`_Parser` subclass its ``SCIMLexer`` and ``SCIMParser`` to fix what that version gets
wrong, and the library's AST is then converted into the project's own (:mod:`filter_ast`), which
is what the SQL compiler, the evaluator and the PATCH engine consume.

Fixes over 0.7.0, each covered by a test in ``tests/unit/test_filter_parse.py``:

- numbers: any JSON number (``1234``, ``-1``, ``1.5``, ``2e3``), not one digit;
- strings: JSON strings with escapes (``\\"``, ``\\\\``, ``\\u00e9``), decoded as JSON does;
- ``true``/``false``/``null`` only as whole words, so ``nullable`` or ``trueName`` are names,
  and typed (``true`` is the boolean, ``"true"`` the string);
- operator precedence: 0.7.0 gives ``and`` and ``or`` the same precedence, so ``a or b and c``
  parsed as ``(a or b) and c``; RFC 7644 §3.4.2.2 says ``and`` binds tighter;
- ``emails[type eq "work"].value eq "x"`` is kept apart from ``emails.value[...]`` instead of
  being rewritten in place, so each can be told from the other.

Attribute names are not checked against a schema here (that needs the resource type: see
``filter_eval`` and the SQL compiler); paths are kept exactly as written.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

from scim2_filter_parser import ast as lib_ast
from scim2_filter_parser.lexer import SCIMLexer
from scim2_filter_parser.parser import SCIMParser, SCIMParserError

from scim_server.scim.errors import InvalidFilter, InvalidPath
from scim_server.scim.filter_ast import (
    COMPARISON_OPERATORS,
    And,
    AttrPath,
    Compare,
    Expr,
    Literal,
    Not,
    Or,
    PatchPath,
    Present,
    ValuePath,
)
from scim_server.scim.schema import default_registry
from scim_server.scim.wire import unstorable, unstorable_named

#: Longest filter accepted (characters). A filter is compiled into one SQL statement; a bound keeps
#: a single request from building an arbitrarily large query. DESIGN §7 (limits).
MAX_FILTER_LENGTH = 4096

#: Longest PATCH ``path`` accepted (characters); same reasoning as :data:`MAX_FILTER_LENGTH`.
MAX_PATH_LENGTH = MAX_FILTER_LENGTH

#: Deepest nesting of parentheses and brackets accepted. Every consumer of the AST (converter,
#: evaluator, SQL compiler) walks it recursively; a bound keeps a crafted filter from exhausting
#: the stack. Real IdP filters nest one or two levels.
MAX_FILTER_DEPTH = 32

#: Most comparisons (``eq`` ... ``pr``) in one filter; same reasoning. A lookup of 90 ids joined
#: by ``or`` (about what fits in :data:`MAX_FILTER_LENGTH`) stays well below it.
MAX_FILTER_TERMS = 200

# Longest piece of client text quoted back in an error detail.
_MAX_QUOTED = 60

if TYPE_CHECKING:  # pragma: no cover - sly injects ``_`` into lexer/parser class bodies

    def _(*patterns: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...


# A JSON literal (RFC 8259) must end at a word boundary: ``nullable`` is a name, not ``null``.
_WORD_END = r"(?![A-Za-z0-9_$:.\-])"


class _SyntaxProblem(Exception):
    """A lexing or parsing problem at a character offset of the text."""

    def __init__(self, message: str, index: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.index = index


class _Lexer(SCIMLexer):  # type: ignore[misc]
    """``SCIMLexer`` with JSON literals done as RFC 7644 §3.4.2.2 ``compValue`` requires.

    Token values are already typed: NUMBER -> int/float, COMP_VALUE -> str, TRUE/FALSE -> bool,
    NULL -> None, so the converter can tell ``true`` from ``"true"``.
    """

    tokens = SCIMLexer.tokens

    # Same names as the base rules: sly replaces them in place, keeping the base order (literals
    # before SCHEMA_URI and ATTRNAME), so only whole-word literals win over names.
    @_(r"[Ff][Aa][Ll][Ss][Ee]" + _WORD_END)
    def FALSE(self, t: Any) -> Any:
        t.value = False
        return t

    @_(r"[Tt][Rr][Uu][Ee]" + _WORD_END)
    def TRUE(self, t: Any) -> Any:
        t.value = True
        return t

    @_(r"[Nn][Uu][Ll][Ll]" + _WORD_END)
    def NULL(self, t: Any) -> Any:
        t.value = None
        return t

    # RFC 8259 §6 number; a trailing name character makes it something else (``1abc``).
    @_(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?" + _WORD_END)
    def NUMBER(self, t: Any) -> Any:
        text = str(t.value)
        if any(c in text for c in ".eE"):
            number = float(text)
            if not math.isfinite(number):
                raise _SyntaxProblem(f"number {_quoted(text)} is out of range", t.index)
            t.value = number
        else:
            t.value = int(text)
        return t

    # RFC 8259 §7 string: escapes included; decoded by the JSON decoder itself.
    @_(r'"(?:[^"\\]|\\.)*"')
    def COMP_VALUE(self, t: Any) -> Any:
        try:
            value = json.loads(t.value, strict=False)
        except ValueError:
            raise _SyntaxProblem(f"invalid string {_quoted(t.value)}", t.index) from None
        # a raw NUL is a template's placeholder (a client's text with one is refused first);
        # a template's strings are checked when they are split out (``_split_strings``)
        found = None if "\x00" in t.value else unstorable(value)
        if found is not None:
            raise _SyntaxProblem(
                f"string {_quoted(t.value)} holds {unstorable_named(found)}", t.index
            )
        t.value = value
        return t

    def error(self, t: Any) -> NoReturn:
        char = str(t.value)[:1]
        if char == '"':
            raise _SyntaxProblem("unterminated string", t.index)
        if char.isdigit() or char == "-":
            word = str(t.value).split(" ", 1)[0]
            raise _SyntaxProblem(f"invalid number {_quoted(word)}", t.index)
        raise _SyntaxProblem(f"unexpected character {_quoted(char)}", t.index)


class _Parser(SCIMParser):  # type: ignore[misc]
    """``SCIMParser`` with RFC 7644 §3.4.2.2 precedence: not > and > or.

    sly builds a parser only from the rules in its own class body, so the base rules are listed
    again by reference; only ``attr_path`` is redefined (see :func:`_Parser.attr_path`).
    """

    tokens = SCIMParser.tokens
    precedence = (
        ("left", "OR"),
        ("left", "AND"),
        ("right", "NOT"),
    )

    filter = SCIMParser.filter
    value_path = SCIMParser.value_path
    attr_exp = SCIMParser.attr_exp
    log_exp = SCIMParser.log_exp
    comp_value = SCIMParser.comp_value
    sub_attr = SCIMParser.sub_attr

    @_(
        "ATTRNAME",
        "ATTRNAME sub_attr",
        "SCHEMA_URI ATTRNAME",
        "SCHEMA_URI ATTRNAME sub_attr",
        "value_path",
        "value_path sub_attr",
    )
    def attr_path(self, p: Any) -> Any:
        """Like the base rule, but ``valuePath subAttr`` becomes ``AttrPath(filter, sub)``.

        The base rule moves the sub-attribute into the bracket's namespace, which makes
        ``emails[type eq "work"].value`` and ``emails.value[type eq "work"]`` identical.
        """
        parts = [p[i] for i in range(len(p))]
        uri = parts.pop(0) if len(parts) > 1 and isinstance(parts[1], str) else None
        name = parts[0]
        sub = parts[1] if len(parts) > 1 else None
        return lib_ast.AttrPath(name, sub, uri)

    def __init__(self, tokens: list[Any]) -> None:
        super().__init__()
        self._all_tokens = tokens

    def error(self, token: Any) -> NoReturn:
        raise _SyntaxProblem(_describe_error(self._all_tokens, token), _index_of(token))


def _index_of(token: Any) -> int | None:
    return None if token is None else int(token.index)


_OPERATOR_TYPES = frozenset(op.upper() for op in COMPARISON_OPERATORS)
_VALUE_TYPES = frozenset({"NUMBER", "COMP_VALUE", "TRUE", "FALSE", "NULL"})
_NAME_TYPES = frozenset({"ATTRNAME", "SUBATTR"})


def _describe_error(tokens: list[Any], token: Any) -> str:
    """A detail an IT admin can act on, from the token the grammar could not accept."""
    if token is None:
        last = tokens[-1] if tokens else None
        if last is not None and last.type in _OPERATOR_TYPES:
            return f"operator {_quoted(last.value)} needs a value"
        return "the filter ends too early"
    position = next((i for i, t in enumerate(tokens) if t is token), -1)
    previous = tokens[position - 1] if position > 0 else None
    shown = _token_text(token)
    if token.type == "ATTRNAME" and previous is not None:
        if previous.type in _NAME_TYPES:
            return f"unknown operator {shown}"
        if previous.type in _OPERATOR_TYPES:
            # Entra sends unquoted values (DESIGN §4.1); refused until a dialect rule quotes them.
            example = json.dumps(str(token.value)[:_MAX_QUOTED])
            return (
                f"value {shown} after {_quoted(previous.value)} is not a JSON value: "
                f"strings must be in double quotes, e.g. {example}"
            )
    if token.type in _VALUE_TYPES and previous is not None and previous.type == "PR":
        return f"operator {_quoted(previous.value)} takes no value, got {shown}"
    if token.type in _VALUE_TYPES and previous is not None and previous.type in _NAME_TYPES:
        return f"missing operator before {shown}"
    return f"unexpected {shown}"


def _token_text(token: Any) -> str:
    if token.type == "COMP_VALUE":
        return _quoted(json.dumps(token.value))
    if token.type in {"TRUE", "FALSE", "NULL"}:
        return _quoted(json.dumps(token.value))
    if token.type == "SCHEMA_URI":
        return _quoted(f"{token.value}:")
    if token.type == "SUBATTR":
        return _quoted(f".{token.value}")
    return _quoted(str(token.value))


def _quoted(text: str) -> str:
    if len(text) > _MAX_QUOTED:
        text = text[:_MAX_QUOTED] + "..."
    return f"'{text}'"


def _tokenize(text: str) -> list[Any]:
    tokens: Iterator[Any] = _Lexer().tokenize(text)
    return list(tokens)


def _parse_tree(text: str) -> Any:
    """Tokens, then the library's AST; every failure is a :class:`_SyntaxProblem`."""
    tokens = _tokenize(text)
    if not tokens:
        raise _SyntaxProblem("the filter is empty", None)
    _check_size(tokens)
    try:
        return _Parser(tokens).parse(iter(tokens))
    except SCIMParserError as exc:  # pragma: no cover - _Parser.error raises _SyntaxProblem
        raise _SyntaxProblem(str(exc), None) from None


def _check_size(tokens: list[Any]) -> None:
    depth = terms = 0
    for token in tokens:
        if token.type in {"LPAREN", "LBRACKET"}:
            depth += 1
            if depth > MAX_FILTER_DEPTH:
                raise _SyntaxProblem(
                    f"nested more than {MAX_FILTER_DEPTH} levels deep", token.index
                )
        elif token.type in {"RPAREN", "RBRACKET"}:
            depth -= 1
        elif token.type in _OPERATOR_TYPES or token.type == "PR":
            terms += 1
            if terms > MAX_FILTER_TERMS:
                raise _SyntaxProblem(
                    f"more than {MAX_FILTER_TERMS} comparisons in one filter", token.index
                )


def _located(problem: _SyntaxProblem, text: str) -> str:
    where = "" if problem.index is None else f" (at character {problem.index + 1})"
    if never_returned_name_in(text) is not None:
        # its literals may be a password: the text is not quoted, nor a message that quotes it
        message = "a syntax error" if "'" in problem.message else problem.message
        return f"{client_text(text)}: {message}{where}"
    return f"{_quoted(text)}: {problem.message}{where}"


def client_text(text: str) -> str:
    """A client's filter or path for an error detail: quoted, unless it names an attribute that
    is never returned (the password), whose literals may be the secret (DESIGN §7)."""
    secret = never_returned_name_in(text)
    if secret is None:
        return _quoted(text)
    return f'(not quoted: it names "{secret}", which is never returned)'


@functools.cache
def _never_returned_names() -> re.Pattern[str]:
    """The names of the attributes no response shows (``returned: never`` in ``schemas/``: the
    password), as they may appear in a filter, with or without their schema's URN."""
    names = {
        attribute.name
        for resource_type in default_registry().resource_types
        for schema in (resource_type.schema, *(ext.schema for ext in resource_type.extensions))
        for top in schema.attributes
        for attribute in (top, *top.sub_attributes)
        if attribute.returned == "never"
    }
    alternatives = "|".join(sorted(map(re.escape, names))) or "(?!)"
    return re.compile(rf"(?<![\w$-])({alternatives})(?![\w$-])", re.IGNORECASE)


def never_returned_name_in(text: str) -> str | None:
    """The never-returned attribute ``text`` names outside its complete string literals (a
    value that only contains the word is no password), if any."""
    found = _never_returned_names().search(_STRING_LITERAL.sub('""', text))
    return found.group(1) if found else None


# --- public API ---------------------------------------------------------------------------------


def parse_filter(text: str) -> Expr:
    """Parse a ``filter`` (RFC 7644 §3.4.2.2) into the project's AST.

    Raises :class:`InvalidFilter` (400 ``invalidFilter``) with a detail that quotes the problem,
    for anything the grammar does not accept, including unquoted string values (an Entra
    deviation, refused until a dialect rule rewrites it) and filters over
    :data:`MAX_FILTER_LENGTH` characters.
    """
    if not isinstance(text, str):
        raise InvalidFilter("the filter must be a string")
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidFilter(
            f"the filter is {len(text)} characters long; the maximum is {MAX_FILTER_LENGTH}"
        )
    if not text.strip():
        raise InvalidFilter("the filter is empty")
    if "\x00" in text:
        raise InvalidFilter("the filter contains the NUL character (U+0000), which no value has")
    split = _split_strings(text)
    if split is not None:
        try:
            template = split[0]
            parse: Callable[[str], Expr] = _parse_template
            if len(template) > _REMEMBERED_TEMPLATE_LENGTH:
                parse = _parse_template.__wrapped__
            return _filled(parse(template), split[1])
        except (_SyntaxProblem, InvalidFilter, SCIMParserError, ValueError):
            pass  # refused: parsed again as sent below, so the detail quotes the client's text
    try:
        tree = _parse_tree(text)
        return _convert(tree, inside=None)
    except _SyntaxProblem as problem:
        raise InvalidFilter(f"invalid filter {_located(problem, text)}") from None
    except (SCIMParserError, ValueError) as exc:  # pragma: no cover - the subclasses raise ours
        # What scim2-filter-parser itself raises on bad input is still the client's filter.
        raise InvalidFilter(f"invalid filter {_quoted(text)}: {_quoted(str(exc))}") from None


# --- templates: a filter's parse remembered by its shape -----------------------------------------
#
# IdPs send a handful of filter shapes (``userName eq "..."``, ``externalId eq "..."``,
# ``displayName eq "..."``) with a new value each time, and parsing with the library's lexer and
# LALR parser was a fifth of such a request. A filter is parsed once per *template*: its text with
# every string literal replaced by a numbered placeholder; the request's strings are then put back
# into a copy of the remembered tree. A template holds attribute names, operators and the
# non-string literals only (numbers, true, false, null), never a string, so the names and ids one
# organisation searches for are not kept and cannot be timed by another. Anything the template
# parse refuses is parsed again as sent, so the refusal quotes the client's own text.

# A string literal exactly as the lexer's COMP_VALUE reads it. A '"' outside a string is no
# token of the grammar, so scanning left to right finds the lexer's strings and nothing else.
_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"')

# Placeholders begin with NUL. Every string literal of the text is replaced, so every string
# literal of a template is a placeholder; a NUL outside a string does not lex, in the template as
# in the text, and the text is then parsed again as sent for its refusal.
_PLACEHOLDER = "\x00"

#: Templates remembered (attribute names and operators only; see above).
_TEMPLATES = 256

#: The longest template remembered. A longer one (dozens of comparisons: no IdP sends it) is
#: parsed for its request alone, so distinct large filters cannot fill the cache with trees of
#: a hundred kilobytes each.
_REMEMBERED_TEMPLATE_LENGTH = 1024


def _split_strings(text: str) -> tuple[str, tuple[str, ...]] | None:
    """The template of ``text`` and its decoded strings in order; None when a string does not
    decode (the full parse then refuses it with its position)."""
    values: list[str] = []

    def placeholder(match: re.Match[str]) -> str:
        values.append(match.group(0))
        return f'"{_PLACEHOLDER}{len(values) - 1}"'

    template = _STRING_LITERAL.sub(placeholder, text)
    try:
        decoded = tuple(json.loads(value, strict=False) for value in values)
    except ValueError:
        return None
    if any(unstorable(value) is not None for value in decoded):
        return None
    return template, decoded


@functools.lru_cache(maxsize=_TEMPLATES)
def _parse_template(template: str) -> Expr:
    """The tree of a template, remembered (refusals are not: lru_cache keeps no exception)."""
    return _convert(_parse_tree(template), inside=None)


def _filled(expr: Expr, values: tuple[str, ...]) -> Expr:
    """``expr`` with each placeholder replaced by its string."""
    if isinstance(expr, Compare):
        value = expr.value
        if isinstance(value, str):
            if not value.startswith(_PLACEHOLDER):  # pragma: no cover - every string was replaced
                raise ValueError("a string literal of a template is not a placeholder")
            return Compare(expr.path, expr.op, values[int(value[1:])])
        return expr
    if isinstance(expr, And):
        return And(_filled(expr.left, values), _filled(expr.right, values))
    if isinstance(expr, Or):
        return Or(_filled(expr.left, values), _filled(expr.right, values))
    if isinstance(expr, Not):
        return Not(_filled(expr.expr, values))
    if isinstance(expr, ValuePath):
        return ValuePath(expr.path, _filled(expr.filter, values))
    return expr


def parse_patch_path(text: str) -> PatchPath:
    """Parse a PATCH ``path`` (RFC 7644 §3.5.2: ``PATH = attrPath / valuePath [subAttr]``).

    URN-qualified paths are split where the ABNF splits them: the URI is everything before the
    last ``:`` that precedes the attribute name, so ``urn:...:enterprise:2.0:User:manager.value``
    gives ``AttrPath(attr="manager", sub="value", uri="urn:...:enterprise:2.0:User")``. A bare
    extension URN (``urn:...:enterprise:2.0:User``) is grammatically ``URI ":" ATTRNAME`` too and
    parses as ``AttrPath(attr="User", uri="urn:...:enterprise:2.0")``: only the schema can tell
    the two apart, so the parser keeps the text as written (``str(path.attr)`` gives it back)
    and consumers resolve it with ``filter_eval.resolve_attr_path(..., allow_schema=True)``,
    which first tries ``uri:attr`` as a schema URN of the resource type.

    Raises :class:`InvalidPath` (400 ``invalidPath``) naming the path.
    """
    if not isinstance(text, str):
        raise InvalidPath('"path" must be a string')
    if len(text) > MAX_PATH_LENGTH:
        raise InvalidPath(
            f'"path" is {len(text)} characters long; the maximum is {MAX_PATH_LENGTH}'
        )
    if not text.strip():
        raise InvalidPath('"path" is empty')
    if "\x00" in text:
        raise InvalidPath('"path" contains the NUL character (U+0000), which no value has')
    # by template, as filters are (see above): the dialect rules and the PATCH engine each
    # parse an operation's path, five parses per operation, and a group's members[value eq
    # "..."] removals are one shape with a new id each time
    split = _split_strings(text)
    if split is not None:
        try:
            template = split[0]
            parse: Callable[[str], PatchPath] = _patch_path_template
            if len(template) > _REMEMBERED_TEMPLATE_LENGTH:
                parse = _patch_path_template.__wrapped__
            path = parse(template)
        except (InvalidPath, SCIMParserError, ValueError):
            pass  # refused: parsed again as sent below, so the detail quotes the client's text
        else:
            if path.value_filter is None:
                return path
            return PatchPath(path.attr, _filled(path.value_filter, split[1]), path.sub)
    return _parsed_patch_path(text)


@functools.lru_cache(maxsize=512)
def _patch_path_template(template: str) -> PatchPath:
    """The parse of a path's template, remembered (refusals are not)."""
    return _parsed_patch_path(template)


def _parsed_patch_path(text: str) -> PatchPath:
    try:
        return _parse_patch_path(text)
    except _SyntaxProblem as problem:
        raise InvalidPath(f"invalid path {_located(problem, text)}") from None
    except InvalidFilter as exc:
        raise InvalidPath(f"invalid path {client_text(text)}: value filter {exc.detail}") from None


def _parse_patch_path(text: str) -> PatchPath:
    tokens = _tokenize(text)
    pos = 0

    def peek() -> Any:
        return tokens[pos] if pos < len(tokens) else None

    def fail(token: Any, expected: str) -> NoReturn:
        if token is None:
            raise _SyntaxProblem(f"the path ends too early; expected {expected}", None)
        raise _SyntaxProblem(f"unexpected {_token_text(token)}; expected {expected}", token.index)

    uri: str | None = None
    if (tok := peek()) is not None and tok.type == "SCHEMA_URI":
        uri = str(tok.value)
        pos += 1
    tok = peek()
    if tok is None or tok.type != "ATTRNAME":
        fail(tok, "an attribute name")
    attr = str(tok.value)
    pos += 1

    tok = peek()
    if tok is None:
        return PatchPath(AttrPath(attr, None, uri))
    if tok.type == "SUBATTR":
        pos += 1
        if (extra := peek()) is not None:
            fail(extra, "the end of the path")
        return PatchPath(AttrPath(attr, str(tok.value), uri))
    if tok.type != "LBRACKET":
        fail(tok, "'.', '[' or the end of the path")

    # valuePath: the filter runs to the matching "]" (strings are single tokens, so a "]" inside
    # a quoted value cannot end it).
    start = tok
    depth = 0
    close = None
    for index in range(pos, len(tokens)):
        if tokens[index].type == "LBRACKET":
            depth += 1
        elif tokens[index].type == "RBRACKET":
            depth -= 1
            if depth == 0:
                close = index
                break
    if close is None:
        raise _SyntaxProblem("'[' is never closed", start.index)
    inner = text[start.end : tokens[close].index]
    if not inner.strip():
        raise _SyntaxProblem("empty value filter '[]'", start.index)
    value_filter = _parse_value_filter(inner)
    pos = close + 1

    sub: str | None = None
    tok = peek()
    if tok is not None and tok.type == "SUBATTR":
        sub = str(tok.value)
        pos += 1
        tok = peek()
    if tok is not None:
        fail(tok, "'.subAttribute' or the end of the path")
    return PatchPath(AttrPath(attr, None, uri), value_filter, sub)


def _parse_value_filter(text: str) -> Expr:
    """The filter inside ``attr[...]`` of a PATCH path: ``valFilter`` of RFC 7644 §3.4.2.2."""
    try:
        tree = _parse_tree(text)
        return _convert(tree, inside="the value filter")
    except _SyntaxProblem as problem:
        raise InvalidFilter(_located(problem, text)) from None


# --- library AST -> filter_ast ------------------------------------------------------------------


def _convert(node: Any, *, inside: str | None) -> Expr:
    """Convert a library ``Filter``/``LogExpr``/``AttrExpr`` node.

    ``inside`` names the enclosing value path when converting a bracketed filter: its paths are
    sub-attributes of one element (RFC 7644 §3.4.2.2 ``valFilter``), so they may carry neither a
    schema URI, nor a sub-attribute, nor another bracket.
    """
    if isinstance(node, lib_ast.Filter):
        if node.namespace is not None:
            expr: Expr = _value_path(node.namespace, node.expr, inside=inside)
        else:
            expr = _convert(node.expr, inside=inside)
        return Not(expr) if node.negated else expr
    if isinstance(node, lib_ast.LogExpr):
        left = _convert(node.expr1, inside=inside)
        right = _convert(node.expr2, inside=inside)
        return And(left, right) if str(node.op).lower() == "and" else Or(left, right)
    if isinstance(node, lib_ast.AttrExpr):
        return _attr_expr(node, inside=inside)
    raise _SyntaxProblem(f"unsupported expression {type(node).__name__}", None)  # pragma: no cover


def _attr_expr(node: Any, *, inside: str | None) -> Expr:
    op = str(node.value).lower()
    lib_path = node.attr_path
    if isinstance(lib_path.attr_name, lib_ast.Filter):
        if inside is not None:
            raise _SyntaxProblem(f"a value filter '[...]' cannot be nested in {inside}", None)
        # emails[type eq "work"].value eq "x" -> emails[type eq "work" and value eq "x"]
        bracket = lib_path.attr_name
        if lib_path.sub_attr is None:
            raise _SyntaxProblem(
                f"a value filter '[...]' must be followed by '.subAttribute' before {op!r}",
                None,
            )
        outer = _value_path(bracket.namespace, bracket.expr, inside=inside)
        if bracket.negated:  # pragma: no cover - the grammar cannot negate a bare value path
            raise _SyntaxProblem("unexpected 'not'", None)
        leaf = _comparison(AttrPath(str(lib_path.sub_attr.value)), op, node.comp_value)
        return ValuePath(outer.path, And(outer.filter, leaf))
    path = _attr_path(lib_path, inside=inside)
    return _comparison(path, op, node.comp_value)


def _comparison(path: AttrPath, op: str, comp_value: Any) -> Expr:
    if op == "pr":
        return Present(path)
    if op not in COMPARISON_OPERATORS:  # pragma: no cover - the grammar only knows these
        raise _SyntaxProblem(f"unknown operator {_quoted(op)}", None)
    value: Literal = comp_value.value
    return Compare(path, op, value)


def _value_path(namespace: Any, inner: Any, *, inside: str | None) -> ValuePath:
    if inside is not None:
        raise _SyntaxProblem(f"a value filter '[...]' cannot be nested in {inside}", None)
    path = _attr_path(namespace, inside=None)
    if path.sub is not None:
        # RFC 7643 §2.4: sub-attributes are never complex, so "name.x[...]" selects nothing.
        raise _SyntaxProblem(
            f"a value filter applies to a multi-valued attribute, not to {_quoted(str(path))}",
            None,
        )
    return ValuePath(path, _convert(inner, inside=f"'{path}[...]'"))


def _attr_path(lib_path: Any, *, inside: str | None) -> AttrPath:
    name = lib_path.attr_name
    if isinstance(name, lib_ast.Filter):
        raise _SyntaxProblem("a value filter '[...]' cannot be nested here", None)
    sub = None if lib_path.sub_attr is None else str(lib_path.sub_attr.value)
    uri = None if lib_path.uri is None else str(lib_path.uri)
    path = AttrPath(str(name), sub, uri)
    if inside is not None and (sub is not None or uri is not None):
        raise _SyntaxProblem(
            f"{_quoted(str(path))} inside {inside} must be a sub-attribute name of that attribute",
            None,
        )
    return path
