"""YAML that remembers where every key and value came from.

PyYAML's `safe_load` throws positions away, yet a finance user editing a policy needs
`rules/10-standard.yaml:14:18: ...`, not a traceback. So we *compose* the document (SafeLoader:
no python tags), convert the node tree into plain Python values ourselves, and keep a
mark (1-based line and column) for every key and value, addressed by a *path* such as
`("stages", 2, "when")`.

This module knows nothing about policies; the config loader reuses it with its own pydantic model:

    located = load_located_file(path)            # never raises for bad YAML or a missing file
    problems = list(located.problems)            # syntax errors, duplicate keys
    try:
        settings = Settings.model_validate(located.data)
    except ValidationError as exc:
        problems += validation_problems(exc, located, model=Settings)
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from engine.errors import Problem

#: A position in the value tree: mapping keys and sequence indexes, outermost first.
YamlPath = tuple[Any, ...]
#: Aliases let a small file expand into a huge tree ("billion laughs"); stop well before that hurts.
MAX_NODES = 200_000


@dataclass(frozen=True, order=True)
class Mark:
    """A 1-based line and column, the way editors count."""

    line: int
    column: int


@dataclass(frozen=True)
class Expect:
    """Pydantic `Annotated` metadata: how to describe what a field wants in error messages.

    `after_days: Annotated[int, Expect("a whole number of days")]` makes a wrong value read
    "after_days must be a whole number of days, got 'ten'". Pydantic ignores unknown metadata.
    """

    phrase: str


@dataclass(frozen=True)
class Limit:
    """Pydantic `Annotated` metadata: what the bounds of a number (or the length of a text or list) measure,
    for messages that name the limit: `Annotated[int, Limit("days", "100 years")]` with `le=36500` makes a
    value over it read "after_days 10000000000 is over the limit of 36,500 days (100 years)"."""

    unit: str
    note: str = ""
    hint: str = ""


# --------------------------------------------------------------------------- loading


@dataclass
class Located:
    """Plain values of one YAML document plus the marks of their keys and values."""

    file: str
    text: str
    #: The document as plain Python (dict / list / str / int / float / bool / None / date).
    data: Any = None
    #: Syntax errors, duplicate keys, unreadable file: found before any schema check.
    problems: list[Problem] = field(default_factory=list)
    #: The exact bytes read, when loaded from a file (for hashing).
    raw: bytes | None = None
    #: False when the document could not be parsed at all (data is then None).
    parsed: bool = True
    _values: dict[YamlPath, Node] = field(default_factory=dict, repr=False)
    _keys: dict[YamlPath, Node] = field(default_factory=dict, repr=False)

    def has(self, path: Sequence[Any]) -> bool:
        """Whether this exact path exists in the document."""
        return tuple(path) in self._values

    def node(self, path: Sequence[Any]) -> Node | None:
        """The YAML node of the value at `path`, if it exists."""
        return self._values.get(tuple(path))

    def value_mark(self, path: Sequence[Any]) -> Mark:
        """Where the value at `path` starts; for a missing path, the nearest existing ancestor."""
        path = tuple(path)
        while path not in self._values and path:
            path = path[:-1]
        node = self._values.get(path)
        return _mark(node) if node is not None else Mark(1, 1)

    def key_mark(self, path: Sequence[Any]) -> Mark:
        """Where the key naming `path` starts (list items and the root: their value mark)."""
        node = self._keys.get(tuple(path))
        return _mark(node) if node is not None else self.value_mark(path)

    def key_line(self, path: Sequence[Any]) -> int:
        """The line of the key (or value) at `path`; handy for "first defined at line N"."""
        return self.key_mark(path).line

    def position_in_scalar(self, path: Sequence[Any], offset: int) -> Mark:
        """The file position of character `offset` (0-based) of the string scalar at `path`.

        Quotes, escapes, '' in single quotes, folded line breaks and block-scalar indentation
        are accounted for. If the mapping cannot be reconstructed exactly we fall back to the
        value's mark plus the offset (plus one for an opening quote) on the same line.
        """
        node = self._values.get(tuple(path))
        if not isinstance(node, ScalarNode):
            return self.value_mark(path)
        offset = max(0, offset)
        positions = _scalar_positions(self.text, node)
        if positions is not None and positions:
            index = positions[offset] if offset < len(positions) else positions[-1] + 1
            return _mark_of_index(self.text, index)
        start = _mark(node)
        if node.style in ("|", ">"):
            return start
        quote = 1 if node.style in ("'", '"') else 0
        return Mark(start.line, start.column + quote + offset)

    def problem(
        self,
        path: Sequence[Any],
        message: str,
        *,
        at: str = "value",
        offset: int | None = None,
        severity: str = "error",
    ) -> Problem:
        """A Problem located at the value (default) or the key (`at="key"`) of `path`.

        With `offset`, at that character inside the scalar (see `position_in_scalar`).
        """
        if offset is not None:
            mark = self.position_in_scalar(path, offset)
        elif at == "key":
            mark = self.key_mark(path)
        else:
            mark = self.value_mark(path)
        return Problem(self.file, mark.line, mark.column, message, severity)


def load_located(text: str, path: str | Path) -> Located:
    """Parse one YAML document; never raises for bad input.

    An empty document gives `data=None`. Syntax errors, multiple documents, unsupported tags and
    duplicate keys become Problems in `.problems` (with `parsed=False` if nothing usable came out;
    a duplicate key keeps the last value, as YAML tools do, so later checks still run).
    """
    located = Located(file=str(path), text=text)
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)
        root = loader.get_single_node()
        if root is not None:
            located.data = _convert(root, (), loader, located, set())
    except yaml.MarkedYAMLError as exc:
        located.parsed = False
        located.data = None
        located.problems.append(_syntax_problem(located.file, exc))
    except yaml.reader.ReaderError as exc:
        located.parsed = False
        located.data = None
        mark = _mark_of_index(text, exc.position)
        code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        located.problems.append(
            Problem(located.file, mark.line, mark.column, f"unsupported control character U+{code:04X}; remove it")
        )
    except yaml.YAMLError as exc:  # any other PyYAML complaint without a position
        located.parsed = False
        located.data = None
        located.problems.append(Problem(located.file, 1, 1, f"not valid YAML: {exc}"))
    except RecursionError:
        located.parsed = False
        located.data = None
        located.problems.append(Problem(located.file, 1, 1, "the YAML is nested too deeply"))
    finally:
        if loader is not None:
            loader.dispose()
    return located


def load_located_file(path: str | Path) -> Located:
    """Read a UTF-8 file and `load_located` it; a missing or unreadable file becomes a Problem at 1:1."""
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return _unreadable(file, "file not found; check the path")
    except IsADirectoryError:
        return _unreadable(file, "is a directory, not a file")
    except OSError as exc:
        return _unreadable(file, f"cannot read the file: {exc.strerror or exc}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Point at the line of the first bad byte: everything before it decodes fine.
        good = raw[: exc.start].decode("utf-8", errors="replace")
        mark = _mark_of_index(good, len(good))
        located = Located(file=file, text="", raw=raw, parsed=False)
        located.problems.append(Problem(file, mark.line, mark.column, "the file is not UTF-8 text; save it as UTF-8"))
        return located
    located = load_located(text, file)
    located.raw = raw
    return located


def _unreadable(file: str, message: str) -> Located:
    located = Located(file=file, text="", parsed=False)
    located.problems.append(Problem(file, 1, 1, message))
    return located


def _syntax_problem(file: str, exc: yaml.MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = exc.problem or "invalid YAML"
    if isinstance(exc, yaml.constructor.ConstructorError):
        if "could not determine a constructor for the tag" in problem:
            tag = problem.rsplit(" ", 1)[-1].replace("tag:yaml.org,2002:", "!!")
            problem = f"the tag {tag} is not allowed; write plain values without '!' tags"
        return Problem(file, line, column, f"unsupported YAML: {problem}")
    if exc.context == "expected a single document in the stream":
        return Problem(file, line, column, "a second YAML document starts here ('---'); keep one document per file")
    if exc.context and exc.context_mark is not None and exc.context_mark is not mark:
        problem += f" ({exc.context} at line {exc.context_mark.line + 1})"
    elif exc.context:
        problem += f" ({exc.context})"
    hint = ""
    if "'\\t'" in problem:
        hint = "; indent with spaces, not tabs"
    elif "mapping values are not allowed" in problem:
        hint = "; check the indentation, or quote a value that contains ': '"
    elif "found undefined alias" in problem:
        hint = "; '*' starts an alias in YAML: quote the value"
    elif "'%'" in problem or "'@'" in problem or "'`'" in problem:
        hint = "; quote the value"
    return Problem(file, line, column, f"YAML syntax error: {problem}{hint}")


def _mark(node: Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def _mark_of_index(text: str, index: int) -> Mark:
    index = max(0, min(index, len(text)))
    line_start = text.rfind("\n", 0, index) + 1
    return Mark(text.count("\n", 0, index) + 1, index - line_start + 1)


def _convert(node: Node, path: YamlPath, loader: yaml.SafeLoader, located: Located, active: set[int]) -> Any:
    """Node tree → plain values, recording marks. `active` guards against recursive aliases."""
    located._values.setdefault(path, node)
    if len(located._values) > MAX_NODES:
        raise yaml.constructor.ConstructorError(
            None, None, f"the document expands to more than {MAX_NODES} values (too many aliases)", node.start_mark
        )
    if isinstance(node, ScalarNode):
        # The SafeLoader's own constructors decide types (int, bool, null, dates...) exactly
        # as `yaml.safe_load` would; unknown tags raise a ConstructorError with a mark.
        try:
            return loader.construct_object(node, deep=True)
        except ValueError:  # Python refuses int() of more than 4,300 digits (a DoS guard), PyYAML passes it on
            digits = sum(ch.isdigit() for ch in str(node.value))
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"this number has {digits} digits, far more than any setting allows; write a smaller number",
                node.start_mark,
            ) from None
    if id(node) in active:
        raise yaml.constructor.ConstructorError(
            None, None, "found a recursive alias (an anchor that contains itself)", node.start_mark
        )
    active.add(id(node))
    try:
        if isinstance(node, SequenceNode):
            _check_tag(node, "tag:yaml.org,2002:seq")
            return [_convert(item, (*path, i), loader, located, active) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            _check_tag(node, "tag:yaml.org,2002:map")
            return _convert_mapping(node, path, loader, located, active)
    finally:
        active.discard(id(node))
    raise yaml.constructor.ConstructorError(None, None, f"unsupported YAML node {type(node).__name__}", node.start_mark)


def _check_tag(node: Node, expected: str) -> None:
    if node.tag != expected:
        raise yaml.constructor.ConstructorError(
            None, None, f"could not determine a constructor for the tag {node.tag!r}", node.start_mark
        )


def _convert_mapping(
    node: MappingNode, path: YamlPath, loader: yaml.SafeLoader, located: Located, active: set[int]
) -> dict[Any, Any]:
    # Duplicates are judged on the keys written in this mapping; keys pulled in by a `<<` merge
    # may legitimately be overridden, which is what merging is for.
    first_seen: dict[Any, Node] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, ScalarNode):
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = first_seen.get(key)
        except TypeError:
            continue  # unhashable: reported below
        if first is not None:
            where = _mark(key_node)
            located.problems.append(
                Problem(
                    located.file,
                    where.line,
                    where.column,
                    f"duplicate key '{key}' (first at line {first.start_mark.line + 1}); "
                    "a key may appear only once in the same mapping",
                )
            )
        else:
            first_seen[key] = key_node
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode):
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain word or text, not a list or mapping", key_node.start_mark
            )
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, f"unusable key {key!r}", key_node.start_mark) from None
        child = (*path, key)
        # A later value wins (as in PyYAML); drop marks recorded under the earlier one.
        if key in result:
            for stale in [p for p in located._values if p[: len(child)] == child]:
                del located._values[stale]
        located._keys[child] = key_node
        result[key] = _convert(value_node, child, loader, located, active)
    return result


# --------------------------------------------------------------------------- scalar positions

_SIMPLE_ESCAPES = {
    "0": "\0", "a": "\x07", "b": "\x08", "t": "\t", "\t": "\t", "n": "\n", "v": "\x0b", "f": "\x0c",
    "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\x85", "_": "\xa0",
    "L": "\u2028", "P": "\u2029",
}  # fmt: skip
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}


def _scalar_positions(text: str, node: ScalarNode) -> list[int] | None:
    """For each character of the scalar's value, its index in `text`; None if we cannot tell exactly."""
    start, end = node.start_mark.index, node.end_mark.index
    try:
        if node.style in ("|", ">"):
            positions, decoded = _block_positions(text, start, end, node.style)
            ok = decoded.rstrip("\n") == node.value.rstrip("\n") and len(positions) >= len(node.value.rstrip("\n"))
        else:
            quote = node.style if node.style in ("'", '"') else None
            begin, stop = (start + 1, end - 1) if quote else (start, end)
            positions, decoded = _flow_positions(text, begin, stop, quote)
            ok = decoded == node.value
    except (IndexError, ValueError):
        return None
    return positions if ok else None


def _flow_positions(text: str, begin: int, stop: int, quote: str | None) -> tuple[list[int], str]:
    """Replay YAML flow-scalar folding and escapes over text[begin:stop]."""
    out: list[str] = []
    pos: list[int] = []
    i = begin
    while i < stop:
        c = text[i]
        if c in " \t":
            j = i
            while j < stop and text[j] in " \t":
                j += 1
            if j < stop and text[j] in "\r\n":
                i = j  # trailing white space before a line break is dropped
                continue
            out.extend(text[i:j])
            pos.extend(range(i, j))
            i = j
            continue
        if c in "\r\n":
            breaks, j = 0, i
            while j < stop and text[j] in " \t\r\n":
                if text[j] == "\n" or (text[j] == "\r" and not (j + 1 < stop and text[j + 1] == "\n")):
                    breaks += 1
                j += 1
            # One line break folds into a space; n breaks keep n-1 newlines.
            folded = " " if breaks == 1 else "\n" * (breaks - 1)
            out.extend(folded)
            pos.extend([i] * len(folded))
            i = j
            continue
        if quote == "'" and c == "'" and i + 1 < stop and text[i + 1] == "'":
            out.append("'")
            pos.append(i)
            i += 2
            continue
        if quote == '"' and c == "\\":
            nxt = text[i + 1]
            if nxt in "\r\n":  # escaped line break: joins lines without a space
                j = i + 1
                j += 2 if text[j : j + 2] == "\r\n" else 1
                while j < stop and text[j] in " \t":
                    j += 1
                i = j
                continue
            if nxt in _HEX_ESCAPES:
                width = _HEX_ESCAPES[nxt]
                out.append(chr(int(text[i + 2 : i + 2 + width], 16)))
                pos.append(i)
                i += 2 + width
                continue
            out.append(_SIMPLE_ESCAPES[nxt])
            pos.append(i)
            i += 2
            continue
        out.append(c)
        pos.append(i)
        i += 1
    return pos, "".join(out)


def _block_positions(text: str, start: int, end: int, style: str) -> tuple[list[int], str]:
    """Replay a literal (|) or folded (>) block scalar; chomping is ignored (callers compare stripped)."""
    header_end = text.index("\n", start, end) + 1
    lines: list[tuple[int, str]] = []  # (index of the line start, line text without the newline)
    i = header_end
    while i < end:
        j = text.find("\n", i, end)
        j = end if j < 0 else j
        lines.append((i, text[i:j].rstrip("\r")))
        i = j + 1
    while lines and not lines[-1][1].strip():
        lines.pop()
    content = [line for _, line in lines if line.strip()]
    if not content:
        return [], ""
    indent = min(len(line) - len(line.lstrip(" ")) for line in content)
    out: list[str] = []
    pos: list[int] = []
    previous_text: str | None = None
    pending_breaks = 0
    for line_start, line in lines:
        body = line[indent:] if len(line) >= indent else ""
        if not body.strip() and not body.startswith((" ", "\t")):
            pending_breaks += 1
            continue
        if previous_text is not None:
            if style == "|":
                sep = "\n" * (pending_breaks + 1)
            elif previous_text[:1] in (" ", "\t") or body[:1] in (" ", "\t"):
                sep = "\n" * (pending_breaks + 1)
            else:
                sep = "\n" * pending_breaks if pending_breaks else " "
            out.extend(sep)
            pos.extend([line_start] * len(sep))
        elif pending_breaks:
            out.extend("\n" * pending_breaks)
            pos.extend([line_start] * pending_breaks)
        pending_breaks = 0
        out.extend(body)
        pos.extend(range(line_start + indent, line_start + indent + len(body)))
        previous_text = body
    return pos, "".join(out)


# --------------------------------------------------------------------------- pydantic errors

ItemLabel = Callable[[YamlPath, Any], "str | None"]


def did_you_mean(word: Any, choices: Iterable[str]) -> str:
    """ "; did you mean 'x'?" for the closest choice, or "" when nothing is close."""
    if not isinstance(word, str):
        return ""
    options = list(choices)
    lowered = {c.lower(): c for c in options}
    if word.lower() in lowered and lowered[word.lower()] != word:
        return f"; did you mean '{lowered[word.lower()]}'?"
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not close:
        close = [lowered[m] for m in difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)]
    return f"; did you mean '{close[0]}'?" if close else ""


def show_value(value: Any) -> str:
    """A value the way the user wrote it in YAML, for "got ..." in messages."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'" if len(value) <= 60 else "'" + value[:57] + "...'"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return str(value)


def default_item_label(path: YamlPath, item: Any) -> str | None:
    """`stages item 3`, or the item's `name` when it has one: `stages item 'reminder'`."""
    if len(path) >= 2 and isinstance(path[-1], int):
        name = item.get("name") if isinstance(item, Mapping) else None
        what = str(path[-2])
        return f"{what} item '{name}'" if isinstance(name, str) else f"{what} item {path[-1] + 1}"
    return None


def validation_problems(
    error: ValidationError,
    located: Located,
    *,
    model: type[BaseModel] | None = None,
    base: YamlPath = (),
    item_label: ItemLabel = default_item_label,
) -> list[Problem]:
    """Turn a pydantic ValidationError into Problems located in the YAML.

    `model` (the model that was validated) lets unknown-key messages suggest the right key and
    lets `Expect` metadata phrase wrong-value messages. `base` is the path of the validated value
    inside `located.data` (for a model validated from a sub-tree). `item_label(path, item)` names
    the list item a problem sits in, e.g. "stage 'reminder'".
    """
    problems: list[Problem] = []
    for err in error.errors(include_url=False):
        problems.append(_one_problem(err, located, model, tuple(base), item_label))
    return problems


def _data_at(data: Any, path: YamlPath) -> tuple[bool, Any]:
    for part in path:
        if isinstance(data, Mapping) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return False, None
    return True, data


def _resolve_loc(data: Any, loc: Sequence[Any]) -> tuple[YamlPath, list[Any]]:
    """Map a pydantic `loc` onto a data path, skipping union/validator tags that aren't data.

    Returns the deepest existing path and the loc parts left over (e.g. the missing key).
    """
    path: list[Any] = []
    rest = list(loc)
    current = data
    while rest:
        part = rest[0]
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        elif isinstance(part, str) and len(rest) > 1:
            rest.pop(0)  # a tag such as 'int' or 'function-after[...]' on a union member
            continue
        else:
            break
        path.append(part)
        rest.pop(0)
    return tuple(path), rest


def _unwrap(annotation: Any) -> tuple[Any, tuple[Any, ...]]:
    """Strip Annotated and Optional; return the core type and the Annotated metadata."""
    metadata: list[Any] = []
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            metadata.extend(annotation.__metadata__)
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation, tuple(metadata)
            annotation = args[0]
        else:
            return annotation, tuple(metadata)


def _walk_model(model: Any, path: YamlPath) -> tuple[Any, tuple[Any, ...]]:
    """The (unwrapped) type at `path` inside `model`, and the metadata of the last field on the way."""
    current: Any = model
    metadata: tuple[Any, ...] = ()
    for part in path:
        current, _ = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(part) if isinstance(part, str) else None
            if info is None:
                return None, ()
            current = info.annotation
            metadata = tuple(info.metadata)
            core, extra = _unwrap(current)
            metadata += extra
            continue
        origin = typing.get_origin(current)
        args = typing.get_args(current)
        if origin in (list, tuple, set, frozenset, Sequence) and args:
            current = args[0]
        elif origin in (dict, Mapping) and len(args) == 2:
            current = args[1]
        else:
            return None, ()
        metadata = ()
    core, extra = _unwrap(current)
    return core, metadata + extra


def _field_name(path: YamlPath, item_start: int) -> str:
    parts: list[str] = []
    for part in path[item_start:]:
        if isinstance(part, int) and parts:
            parts[-1] += f"[{part}]"
        else:
            parts.append(str(part))
    return ".".join(parts) if parts else "the value"


def _context(located: Located, path: YamlPath, item_label: ItemLabel) -> tuple[str | None, int]:
    """The label of the innermost labelled list item containing `path`, and where its fields start."""
    for cut in range(len(path), 0, -1):
        prefix = path[:cut]
        if not isinstance(prefix[-1], int):
            continue
        found, item = _data_at(located.data, prefix)
        if found and isinstance(item, Mapping):
            label = item_label(prefix, item)
            if label:
                return label, cut
    return None, 0


def _one_problem(
    err: Mapping[str, Any], located: Located, model: Any, base: YamlPath, item_label: ItemLabel
) -> Problem:
    found, data = _data_at(located.data, base)
    path, rest = _resolve_loc(data if found else None, err["loc"])
    full = base + path
    kind = err["type"]
    label, item_start = _context(located, full, item_label)
    item_start = max(item_start - len(base), 0)
    ctx = err.get("ctx") or {}

    if kind == "extra_forbidden":
        key = path[-1] if path else (rest[0] if rest else "?")
        core, _ = _walk_model(model, path[:-1]) if model is not None else (None, ())
        allowed = list(core.model_fields) if isinstance(core, type) and issubclass(core, BaseModel) else []
        hint = did_you_mean(key, allowed)
        if not hint and allowed:
            hint = "; allowed keys: " + ", ".join(allowed)
        return located.problem(full, f"unknown key '{key}'{_inside(path[:-1], item_start, label)}{hint}", at="key")

    if kind == "missing":
        key = rest[0] if rest else (path[-1] if path else "?")
        return located.problem(full, f"missing required key '{key}'{_inside(path, item_start, label)}")

    name = _field_name(path, item_start)
    value = err.get("input")
    got = f", got {show_value(value)}"
    suffix = f" (in {label})" if label else ""
    core, metadata = _walk_model(model, path) if model is not None else (None, ())
    expect = next((m.phrase for m in metadata if isinstance(m, Expect)), None)
    limit = next((m for m in metadata if isinstance(m, Limit)), None)

    if kind in ("literal_error", "enum"):
        allowed_values = [str(a) for a in typing.get_args(core)] if typing.get_origin(core) is typing.Literal else []
        if allowed_values:
            listing = ", ".join(allowed_values)
            message = f"{name} must be one of: {listing}{got}{did_you_mean(value, allowed_values)}"
        else:
            message = f"{name} must be {ctx.get('expected', 'one of the allowed values')}{got}"
    elif limit is not None and kind in _LIMIT_WORDS and not _plain_floor(kind, ctx):
        message = _over_limit(name, value, kind, ctx, limit) + suffix
        return located.problem(full, f"{message}; {limit.hint}" if limit.hint else message)
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = {
            "greater_than_equal": f"at least {ctx.get('ge')}",
            "greater_than": f"more than {ctx.get('gt')}",
            "less_than_equal": f"at most {ctx.get('le')}",
            "less_than": f"less than {ctx.get('lt')}",
        }[kind]
        message = f"{name} must be {bound}{got}"
    elif kind == "too_short" and isinstance(value, list | tuple | Mapping | str) and not value:
        message = f"{name} must not be empty"
    elif kind in ("too_short", "too_long"):
        message = f"{name}: {str(err['msg']).lower()}"
    elif kind == "value_error":
        message = f"{name}: {str(err['msg']).removeprefix('Value error, ')}"
    elif kind == "assertion_error":
        message = f"{name}: {str(err['msg']).removeprefix('Assertion failed, ')}"
    elif value is None and kind.endswith("_type"):
        # `key:` with nothing after it is YAML null; say "empty", not "got None".
        message = f"{name} is empty; it must be {expect or _expected_from_type(kind, err)}"
    else:
        message = f"{name} must be {expect or _expected_from_type(kind, err)}{got}"
    return located.problem(full, message + suffix)


#: Pydantic's bound errors: (the word for the side that was crossed, the context key of the bound).
_LIMIT_WORDS = {
    "less_than_equal": ("over", "le"),
    "less_than": ("at or over", "lt"),
    "greater_than_equal": ("under", "ge"),
    "greater_than": ("at or under", "gt"),
    "too_long": ("over", "max_length"),
    "string_too_long": ("over", "max_length"),
}


def _plain_floor(kind: str, ctx: Mapping[str, Any]) -> bool:
    """A lower bound of 0 or 1 is no size limit: "must be at least 1, got 0" says it better."""
    floor = ctx.get("ge", ctx.get("gt"))
    return kind in ("greater_than_equal", "greater_than") and isinstance(floor, int | float) and floor >= 0


def _over_limit(name: str, value: Any, kind: str, ctx: Mapping[str, Any], limit: Limit) -> str:
    side, key = _LIMIT_WORDS[kind]
    bound = ctx.get(key)
    shown = f"{bound:,}" if isinstance(bound, int) and not isinstance(bound, bool) else str(bound)
    note = f" ({limit.note})" if limit.note else ""
    if kind in ("too_long", "string_too_long"):
        size = len(value) if isinstance(value, str | list | tuple | Mapping) else "?"
        what = (
            f"{name} is {size:,} {limit.unit} long" if isinstance(value, str) else f"{name} has {size:,} {limit.unit}"
        )
        return f"{what}; the limit is {shown}{note}"
    given = show_value(value)
    if len(given) > 24:  # a number of hundreds of digits: its size says enough
        given = f"{given[:12]}… ({len(given.lstrip('-'))} digits)"
    unit = f" {limit.unit}" if limit.unit else ""
    return f"{name} {given} is {side} the limit of {shown}{unit}{note}"


def _inside(mapping_path: YamlPath, item_start: int, label: str | None) -> str:
    """ " in repeat of stage 'x'" / " in stage 'x'" / " in calendar" / "" for the top level."""
    inner = _field_name(mapping_path, item_start) if len(mapping_path) > item_start else ""
    if inner and label:
        return f" in {inner} of {label}"
    if label:
        return f" in {label}"
    return f" in {inner}" if inner else ""


_TYPE_PHRASES = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "string": "text",
    "list": "a list",
    "tuple": "a list",
    "set": "a list",
    "dict": "a mapping of keys to values",
    "model": "a mapping of keys to values",
    "model_attributes": "a mapping of keys to values",
    "date": "a date (YYYY-MM-DD)",
    "datetime": "a date and time",
    "decimal": "a number",
    "path": "a file path",
}


def _expected_from_type(kind: str, err: Mapping[str, Any]) -> str:
    if kind == "string_pattern_mismatch":
        return f"text matching {err.get('ctx', {}).get('pattern')}"
    for suffix in ("_type", "_parsing", "_from_float", "_fraction"):
        if kind.endswith(suffix):
            base = kind[: -len(suffix)]
            if base in _TYPE_PHRASES:
                return _TYPE_PHRASES[base]
    if kind.startswith("int_"):
        return "a whole number"
    return str(err.get("msg", "valid")).lower().removeprefix("input should be ")
