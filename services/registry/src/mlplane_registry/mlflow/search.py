"""MLflow's search grammar: filter strings and `order_by`, parsed into the store's terms.

The filter is MLflow's: clauses joined by `AND`, each `<identifier> <comparator>
<value>`. Identifiers: `name`, `tags.<key>` (or `tag.`; a key may be quoted with
backticks or double quotes), and for versions also `run_id`, `source_path`,
`version_number`, `creation_timestamp`, `last_updated_timestamp` (models:
the two timestamps). Comparators: `=`, `!=`, `LIKE`, `ILIKE` on strings and tags,
`IN` / `NOT IN` with a parenthesised list on `name` and `run_id` (and `source_path`),
`=`, `!=`, `<`, `<=`, `>`, `>=` on numbers. `order_by` items are
`<key> [ASC|DESC]`. Anything else is INVALID_PARAMETER_VALUE naming what was sent.
Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from mlplane_registry.mlflow.errors import MlflowError, invalid
from mlplane_registry.mlflow.tags import IS_PROMPT_TAG, RESERVED_PREFIX
from mlplane_registry.store import Comparison, Ordering

MAX_CLAUSES = 20
MAX_IN_VALUES = 100

STRING_OPS = frozenset({"=", "!=", "LIKE", "ILIKE"})
LIST_OPS = frozenset({"IN", "NOT IN"})
NUMBER_OPS = frozenset({"=", "!=", "<", "<=", ">", ">="})

# MLflow's identifier -> the store's field, per kind of search.
_MODEL_FIELDS = {
    "name": "name",
    "creation_timestamp": "created",
    "last_updated_timestamp": "updated",
}
_VERSION_FIELDS = {
    **_MODEL_FIELDS,
    "run_id": "run_id",
    "source_path": "source",
    "version_number": "version",
}
_NUMERIC = frozenset({"created", "updated", "version"})
_LISTABLE = frozenset({"name", "run_id", "source"})
_MODEL_ORDER = {
    "name": "name",
    "creation_timestamp": "created",
    "last_updated_timestamp": "updated",
}
_VERSION_ORDER = {**_MODEL_ORDER, "version_number": "version"}


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A parsed filter: every comparison must hold."""

    comparisons: tuple[Comparison, ...] = ()
    prompts_only: bool = False
    """Asks for MLflow prompts only: there are none (mlplane holds models only)."""


_Fail = Callable[[str], MlflowError]
"""Builds the filter's error from why it failed."""

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<number>-?[0-9]+(?:\.[0-9]+)?)
      | (?P<op>==|!=|<=|>=|=|<|>)
      | (?P<punct>[(),])
      | (?P<ident>(?:tags?|attributes?)\.(?:`[^`]+`|"[^"]+"|[A-Za-z0-9_.:/-]+)
                  |`[^`]+`|[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise invalid(
                f"Invalid filter '{text}': cannot parse it at '{text[position:].strip()[:40]}'."
            )
        kind = match.lastgroup or ""
        found.append((kind, match[kind]))
        position = match.end()
    return found


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def parse_filter(text: str | None, *, versions: bool) -> SearchQuery:
    """The filter of a `search` request. Raises `MlflowError` (INVALID_PARAMETER_VALUE)."""
    if text is None or not text.strip():
        return SearchQuery()
    tokens = _tokens(text)
    fields = _VERSION_FIELDS if versions else _MODEL_FIELDS
    comparisons: list[Comparison] = []
    prompts_only = False
    i = 0

    def fail(why: str) -> MlflowError:
        return invalid(f"Invalid filter '{text}': {why}")

    while True:
        if i >= len(tokens) or tokens[i][0] != "ident":
            raise fail("expected an identifier (name, tags.<key>, ...).")
        identifier = tokens[i][1]
        i += 1
        field, key = _field_of(identifier, fields, fail)
        # The comparator: an operator token or LIKE / ILIKE / IN / NOT IN.
        if i >= len(tokens):
            raise fail(f"expected a comparator after '{identifier}'.")
        kind, word = tokens[i]
        if kind == "op":
            op = "=" if word == "==" else word
            i += 1
        elif kind == "ident" and word.upper() in ("LIKE", "ILIKE", "IN"):
            op = word.upper()
            i += 1
        elif (
            kind == "ident"
            and word.upper() == "NOT"
            and i + 1 < len(tokens)
            and tokens[i + 1][1].upper() == "IN"
        ):
            op = "NOT IN"
            i += 2
        else:
            raise fail(f"'{word}' is not a comparator.")
        values, i = _values(tokens, i, op, fail)
        if field == "tag":
            assert key is not None
            if op not in STRING_OPS:
                raise fail(f"tags compare with {', '.join(sorted(STRING_OPS))}, not {op}.")
            if key == IS_PROMPT_TAG:
                # MlflowClient adds `tags.mlflow.prompt.is_prompt != 'true'` to its searches:
                # mlplane holds no prompts, so only asking for prompts finds nothing.
                value = values[0].lower()
                if (op == "=" and value == "true") or (op == "!=" and value == "false"):
                    prompts_only = True
            else:
                if key.startswith(RESERVED_PREFIX):
                    raise fail(f"tag keys starting with '{RESERVED_PREFIX}' are mlplane's.")
                comparisons.append(Comparison("tag", op, values, key))
        elif field in _NUMERIC:
            if op not in NUMBER_OPS:
                raise fail(f"'{identifier}' is a number: compare it with =, !=, <, <=, >, >=.")
            try:
                numbers = tuple(str(int(v)) for v in values)
            except ValueError:
                raise fail(f"'{identifier}' takes an integer, got '{values[0]}'.") from None
            comparisons.append(Comparison(field, op, numbers))
        else:
            if op in LIST_OPS and field not in _LISTABLE:
                raise fail(f"'{identifier}' does not take {op}.")
            if op not in STRING_OPS | LIST_OPS:
                raise fail(f"'{identifier}' is a string: compare it with =, !=, LIKE, ILIKE, IN.")
            comparisons.append(Comparison(field, op, values))
        if len(comparisons) > MAX_CLAUSES:
            raise fail(f"at most {MAX_CLAUSES} clauses.")
        if i == len(tokens):
            break
        if tokens[i][0] != "ident" or tokens[i][1].upper() != "AND":
            raise fail(f"clauses are joined by AND (got '{tokens[i][1]}'; OR is not supported).")
        i += 1
    return SearchQuery(tuple(comparisons), prompts_only)


def _field_of(identifier: str, fields: dict[str, str], fail: _Fail) -> tuple[str, str | None]:
    head, dot, rest = identifier.partition(".")
    if dot and head.lower() in ("tag", "tags"):
        key = rest[1:-1] if rest[:1] in ("`", '"') else rest
        if not key:
            raise fail("a tag needs a key (tags.<key>).")
        return "tag", key
    name = identifier
    if dot and head.lower() in ("attribute", "attributes"):
        name = rest
    name = name.strip('`"')
    field = fields.get(name)
    if field is None:
        raise fail(
            f"'{identifier}' is not searchable here; use one of "
            f"{', '.join(sorted(fields))} or tags.<key>."
        )
    return field, None


def _values(
    tokens: Sequence[tuple[str, str]], i: int, op: str, fail: _Fail
) -> tuple[tuple[str, ...], int]:
    if op in LIST_OPS:
        if i >= len(tokens) or tokens[i] != ("punct", "("):
            raise fail(f"{op} takes a parenthesised list: ('a', 'b').")
        i += 1
        values: list[str] = []
        while True:
            if i >= len(tokens) or tokens[i][0] not in ("string", "number"):
                raise fail(f"{op} takes a list of quoted values.")
            kind, word = tokens[i]
            values.append(_unquote(word) if kind == "string" else word)
            i += 1
            if i < len(tokens) and tokens[i] == ("punct", ","):
                i += 1
                continue
            if i < len(tokens) and tokens[i] == ("punct", ")"):
                i += 1
                break
            raise fail(f"{op}'s list is not closed.")
        if len(values) > MAX_IN_VALUES:
            raise fail(f"{op} takes at most {MAX_IN_VALUES} values.")
        return tuple(values), i
    if i >= len(tokens) or tokens[i][0] not in ("string", "number"):
        raise fail("expected a value ('text' or a number).")
    kind, word = tokens[i]
    return ((_unquote(word) if kind == "string" else word),), i + 1


def parse_order_by(order_by: Iterable[str], *, versions: bool) -> tuple[Ordering, ...]:
    """MLflow's `order_by` items as orderings, then MLflow's natural order as tie-breakers.

    Models: by name. Versions: MLflow's default is newest change first (then name,
    then version, newest first). Raises INVALID_PARAMETER_VALUE for an unknown key,
    a bad direction or a key given twice.
    """
    keys = _VERSION_ORDER if versions else _MODEL_ORDER
    given: list[Ordering] = []
    seen: set[str] = set()
    items = [item for item in order_by if item.strip()]
    if not items and versions:
        items = ["last_updated_timestamp DESC"]
    for item in items:
        words = item.replace("`", " ").split()
        if not 1 <= len(words) <= 2:
            raise invalid(f"Invalid order_by clause '{item}'. Could not be parsed.")
        field = keys.get(words[0].removeprefix("attributes.").removeprefix("attribute."))
        if field is None:
            raise invalid(
                f"Invalid order by key '{words[0]}' specified. Valid keys are "
                f"{', '.join(sorted(keys))}."
            )
        direction = words[1].upper() if len(words) == 2 else "ASC"
        if direction not in ("ASC", "DESC"):
            raise invalid(f"Invalid ordering key in order_by clause '{item}'.")
        if field in seen:
            raise invalid(f"`order_by` contains duplicate fields: {items}")
        seen.add(field)
        given.append(Ordering(field, descending=direction == "DESC"))
    if "name" not in seen:
        given.append(Ordering("name"))
    if versions and "version" not in seen:
        given.append(Ordering("version", descending=True))
    return tuple(given)
