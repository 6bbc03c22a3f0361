"""YAML loading that remembers where each key stood, for errors naming file and line.

Every YAML document otpsim reads (scenario files, ``PUT /_sim/scenario`` bodies, config
files) comes through :func:`load_yaml`, which refuses hostile shapes *before* building
anything: more than :data:`MAX_BYTES`, nesting deeper than :data:`MAX_DEPTH`, aliases
that expand the document past :data:`MAX_NODES` values (the "billion laughs") or past
:data:`MAX_EXPANDED_BYTES` bytes of scalar text (a few aliases of one long string, which
anything that prints the value would copy), aliases to their own enclosing node, and
integers longer than :data:`MAX_INT_DIGITS` digits.
The check reads the parser's event stream once (no recursion, no expansion), so a
hostile document is refused in about the time it takes to read it.

Example::

    doc = load_yaml("port: 8080\\n", "otpsim.yaml")
    doc.data["port"]            # 8080
    doc.where(("port",))        # "otpsim.yaml:1"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from otpsim.errors import OtpsimError

Path = tuple[str | int, ...]

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64  # nested mappings and lists
MAX_NODES = 100_000  # values in the document with every alias expanded
MAX_EXPANDED_BYTES = 4 * 1024 * 1024  # UTF-8 bytes of its scalars, every alias expanded
MAX_INT_DIGITS = 100

# The C parser when PyYAML was built with libyaml (it is not recursive); else pure Python.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Refused(Exception):
    def __init__(self, line: int, problem: str) -> None:
        super().__init__(problem)
        self.line = line
        self.problem = problem


@dataclass(slots=True)
class YamlDoc:
    data: Any
    filename: str
    lines: dict[Path, int] = field(default_factory=dict)

    def line(self, path: Path) -> int:
        """The line of ``path``'s key, or of the closest enclosing key that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return 1

    def where(self, path: Path) -> str:
        return f"{self.filename}:{self.line(path)}"

    def error(self, path: Path, what: str) -> OtpsimError:
        """An error naming file, line, the dotted key and what was expected."""
        dotted = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
        prefix = f"{self.where(path)}: " + (f"{dotted}: " if dotted else "")
        return OtpsimError(prefix + what)


def _check_shape(text: str) -> None:
    """Refuse a document too deep, or whose aliases expand it too far, from its events.

    Each open collection counts the values it holds and the bytes of their scalars with
    aliases expanded; an anchor remembers its node's counts, so an alias costs what it
    stands for without being walked. Raises _Refused naming the line where a limit was
    crossed.
    """
    open_: list[tuple[str | None, int, int]] = []  # (anchor, values, bytes before it opened)
    sizes: dict[str, tuple[int, int]] = {}  # anchor -> (values, bytes)
    counted = 0  # values so far, every alias expanded
    weight = 0  # bytes of scalar text so far, every alias expanded
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            if len(open_) >= MAX_DEPTH:
                raise _Refused(_line(event), f"nested more than {MAX_DEPTH} levels deep")
            open_.append((event.anchor, counted, weight))
            counted += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, before, weight_before = open_.pop()
            if anchor is not None:
                sizes[anchor] = (counted - before, weight - weight_before)
        elif isinstance(event, yaml.ScalarEvent):
            size = len(event.value.encode("utf-8", "surrogatepass"))
            counted += 1
            weight += size
            if event.anchor is not None:
                sizes[event.anchor] = (1, size)
        elif isinstance(event, yaml.AliasEvent):
            name = event.anchor or ""
            if any(frame[0] == name for frame in open_):
                raise _Refused(_line(event), f"alias *{name} refers to a node that contains it")
            values, size = sizes.get(name, (1, 0))  # an unknown one: compose says so
            counted += values
            weight += size
        if counted > MAX_NODES:
            raise _Refused(
                _line(event),
                f"the document expands to more than {MAX_NODES:,} values (aliases included)",
            )
        if weight > MAX_EXPANDED_BYTES:
            raise _Refused(
                _line(event),
                f"the document expands to more than {MAX_EXPANDED_BYTES // 2**20} MiB of text "
                "(aliases included)",
            )


def _line(event: yaml.Event) -> int:
    return event.start_mark.line + 1 if event.start_mark is not None else 1


def _construct_int(loader: Any, node: yaml.ScalarNode) -> int:
    digits = sum(c.isdigit() for c in str(node.value))
    if digits > MAX_INT_DIGITS:
        raise yaml.constructor.ConstructorError(
            None, None, f"integer with more than {MAX_INT_DIGITS} digits", node.start_mark
        )
    value: int = yaml.SafeLoader.construct_yaml_int(loader, node)
    if len(str(abs(value))) > MAX_INT_DIGITS:  # sexagesimal 1:2:3...: few digits, big value
        raise yaml.constructor.ConstructorError(
            None, None, f"integer with more than {MAX_INT_DIGITS} digits", node.start_mark
        )
    return value


class _BoundedLoader(_Loader):  # type: ignore[misc]
    pass


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _record(root: yaml.Node, lines: dict[Path, int]) -> None:
    """Each key's and item's line; an aliased node is entered once, where it is defined
    (paths through an alias fall back to the alias's own line)."""
    seen: set[int] = set()
    todo: list[tuple[yaml.Node, Path]] = [(root, ())]
    while todo:
        node, path = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                lines[(*path, key)] = key_node.start_mark.line + 1
                todo.append((value_node, (*path, key)))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines[(*path, index)] = item.start_mark.line + 1
                todo.append((item, (*path, index)))


def load_yaml(text: str, filename: str) -> YamlDoc:
    """Parse YAML safely and within limits; any problem is an OtpsimError naming file and
    line (``file:line: invalid YAML: ...``)."""
    if len(text.encode("utf-8")) > MAX_BYTES:
        raise OtpsimError(f"{filename}:1: invalid YAML: larger than {MAX_BYTES:,} bytes")
    loader = None
    try:
        _check_shape(text)
        loader = _BoundedLoader(text)
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        raise OtpsimError(f"{filename}:{exc.line}: invalid YAML: {exc.problem}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "syntax error"
        raise OtpsimError(f"{filename}:{line}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise OtpsimError(f"{filename}:1: invalid YAML: {exc}") from None
    finally:
        if loader is not None:
            loader.dispose()
    lines: dict[Path, int] = {}
    if node is not None:
        _record(node, lines)
    return YamlDoc(data, filename, lines)
