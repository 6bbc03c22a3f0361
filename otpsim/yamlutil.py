"""YAML loading that remembers where each key stood, for errors naming file and line.

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


def _record(node: yaml.Node, path: Path, lines: dict[Path, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _record(value_node, (*path, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _record(item, (*path, index), lines)


def load_yaml(text: str, filename: str) -> YamlDoc:
    """Parse YAML safely; a syntax error becomes an OtpsimError naming file and line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "syntax error"
        raise OtpsimError(f"{filename}:{line}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise OtpsimError(f"{filename}:1: invalid YAML: {exc}") from None
    lines: dict[Path, int] = {}
    if node is not None:
        _record(node, (), lines)
    return YamlDoc(data, filename, lines)
