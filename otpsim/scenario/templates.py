"""Templates in scenario files: ``{{ expressions }}`` over earlier answers, sandboxed.

A scenario file may come from anyone (a pull request, a bug report), and ``otpsim run``
renders its strings, so a template can do nothing but read values: jinja2's
``ImmutableSandboxedEnvironment`` (no private attributes, nothing mutated), and on top of
it an allow-list checked before anything runs:

* only ``{{ ... }}`` expressions (no ``{% ... %}`` statements: no loops, ``set`` or
  macros); names, ``.attr`` and ``[index]``, literals, comparisons, ``and``/``or``/
  ``not``, ``x if c else y``, arithmetic, ``~``, tests (``is defined``), and the filters
  in :data:`FILTERS`, whose output grows at most with their input. No function or
  method calls, and no globals (``range``, ``lipsum``, ``cycler``, ...);
* at most :data:`MAX_TEMPLATE_CHARS` characters, nested at most :data:`MAX_NESTING`
  deep;
* at run time, every operation that can grow a value measures what it would make
  *before* making it, counting a list's or mapping's elements with their own sizes (as
  ``str()`` would print them, :func:`_measure`), and refuses past
  :data:`MAX_OUTPUT_CHARS` characters (or that many bits for ``**`` and integer ``*``):
  ``*``, ``**``, ``+``, ``~``, and the filters that print their input (``string``,
  ``upper``, ``list``, ...). ``%`` does not format strings, and a result, or a piece of
  a rendered string, that would print to more than :data:`MAX_OUTPUT_CHARS` characters is
  an error (the runner prints values into URLs and headers).

:func:`check` reports a problem as a :class:`TemplateProblem` (``otpsim validate`` and
``PUT /_sim/scenario`` name the file and line); :func:`render` fills in every string of
a value.

Example::

    check("{{ otp.otpId }}")                       # {"otp"}
    render({"id": "{{ otp.otpId }}"}, {"otp": {"otpId": "x"}})   # {"id": "x"}
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import jinja2
import jinja2.meta
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_TEMPLATE_CHARS = 4096
MAX_OUTPUT_CHARS = 100_000
MAX_NESTING = 32

# Filters whose output is at most about as large as their input (no padding, no repeat
# counts, no indent widths): `center`, `indent`, `format`, `join`, `replace`, `batch`,
# `tojson`, `wordwrap`, ... are left out.
FILTERS = (
    "abs", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first",
    "float", "int", "items", "last", "length", "list", "lower", "map", "max", "min",
    "reject", "rejectattr", "reverse", "round", "select", "selectattr", "sort", "string",
    "title", "trim", "unique", "upper", "wordcount",
)  # fmt: skip

# Expression nodes a template may contain (anything else, statements and calls
# included, is refused by check()).
_ALLOWED: tuple[type[nodes.Node], ...] = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name, nodes.Const,
    nodes.Getattr, nodes.Getitem, nodes.Slice, nodes.Filter, nodes.Test, nodes.Compare,
    nodes.Operand, nodes.And, nodes.Or, nodes.Not, nodes.Neg, nodes.Pos, nodes.CondExpr,
    nodes.Add, nodes.Sub, nodes.Mul, nodes.Div, nodes.FloorDiv, nodes.Mod, nodes.Pow,
    nodes.Concat, nodes.List, nodes.Tuple, nodes.Dict, nodes.Pair, nodes.Keyword,
)  # fmt: skip


# Filters that print their input (str() of a list prints every element), or turn a
# string into a list of its characters: their input is measured first.
_PRINTING_FILTERS = (
    "capitalize", "e", "escape", "list", "lower", "string", "title", "trim", "upper",
    "wordcount",
)  # fmt: skip


class TemplateProblem(ValueError):
    """A template that ``otpsim run`` would refuse to render; the message says why."""


def _too_large(what: str) -> NoReturn:
    raise jinja2.exceptions.SecurityError(
        f"{what} would make more than {MAX_OUTPUT_CHARS:,} characters, items or bits"
    )


def _measure(value: Any, budget: int = MAX_OUTPUT_CHARS) -> int:
    """About how many characters ``str(value)`` has, elements included (a list of one
    100,000-character string counts 100,000, not 1); stops counting once past ``budget``,
    so measuring costs at most about ``budget`` steps, whatever the value shares."""
    if isinstance(value, str):
        return len(value)
    total = 0
    todo = [value]
    while todo and total <= budget:
        item = todo.pop()
        if isinstance(item, str):
            total += len(item) + 2  # quoted
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        elif isinstance(item, float):
            total += 24
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)  # {}, ": " and ", "
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + 2 * len(item)  # brackets and ", "
            todo.extend(item)
        else:  # a generator, an undefined: printed as a short placeholder
            total += 64
    return total


def _size_of(operator: str, left: Any, right: Any) -> int:
    """About how large ``left <operator> right`` would be (characters with the elements
    of lists counted, or bits for numbers)."""
    ints = isinstance(left, int) and isinstance(right, int)
    if operator == "**":
        return max(left.bit_length(), 1) * right if ints and right > 0 else 0
    if ints or isinstance(left, float) or isinstance(right, float):
        return int(left.bit_length() + right.bit_length()) if ints and operator == "*" else 0
    if operator == "+":
        return _measure(left) + _measure(right)
    if operator != "*":
        return 0
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and isinstance(times, int):
            return _measure(seq) * times
    return 0


class _CodeGenerator(CodeGenerator):
    """jinja2's, except that ``a ~ b`` is measured before it is joined."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.concat_checked((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _Env(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%", "+"})
    code_generator_class = _CodeGenerator

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            raise jinja2.exceptions.SecurityError("'%' does not format strings in scenarios")
        if _size_of(operator, left, right) > MAX_OUTPUT_CHARS:
            _too_large(repr(operator))
        return self.binop_table[operator](left, right)

    def concat_checked(self, parts: tuple[Any, ...]) -> str:
        """``a ~ b ~ ...``: each part printed and joined, if the whole fits."""
        size = 0
        for part in parts:
            size += _measure(part, MAX_OUTPUT_CHARS - size)
            if size > MAX_OUTPUT_CHARS:
                _too_large("'~'")
        return "".join(str(part) for part in parts)


def _measured(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
    """Filter ``f``, refusing an input too large to print before ``f`` prints it."""
    at = 0 if getattr(f, "jinja_pass_arg", None) is None else 1  # after context/environment

    @functools.wraps(f)  # keeps jinja_pass_arg: jinja2 passes the same arguments
    def measured(*args: Any, **kwargs: Any) -> Any:
        if len(args) > at and _measure(args[at]) > MAX_OUTPUT_CHARS:
            _too_large(f"'|{name}'")
        return f(*args, **kwargs)

    return measured


def _finalize(value: Any) -> Any:
    """Each ``{{ ... }}`` of a template with text around it, before it is printed."""
    if _measure(value) > MAX_OUTPUT_CHARS:
        raise jinja2.exceptions.SecurityError(
            f"the template makes more than {MAX_OUTPUT_CHARS:,} characters"
        )
    return value


_env = _Env(undefined=jinja2.StrictUndefined, autoescape=False, finalize=_finalize)
_env.globals.clear()
_env.filters = {
    name: _measured(name, _env.filters[name]) if name in _PRINTING_FILTERS else _env.filters[name]
    for name in FILTERS
}


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


def _single_expression(text: str) -> str | None:
    """The expression of a string that is exactly one ``{{ ... }}`` (it keeps its type)."""
    stripped = text.strip()
    if stripped.startswith("{{") and stripped.endswith("}}") and stripped.count("{{") == 1:
        return stripped[2:-2].strip()
    return None


def _walk(root: nodes.Node) -> None:
    """Refuse any node outside the allow-list, and nesting past MAX_NESTING (no recursion)."""
    todo: list[tuple[nodes.Node, int]] = [(root, 0)]
    while todo:
        node, depth = todo.pop()
        if depth > MAX_NESTING:
            raise TemplateProblem(f"nested more than {MAX_NESTING} levels deep")
        if not isinstance(node, _ALLOWED):
            raise TemplateProblem(_refusal(node))
        private = node.attr if isinstance(node, nodes.Getattr) else None
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            private = node.arg.value if isinstance(node.arg.value, str) else None
        if private is not None and private.startswith("_"):
            raise TemplateProblem(f"private attribute {private!r} is not allowed")
        if isinstance(node, nodes.Filter) and node.name not in FILTERS:
            raise TemplateProblem(
                f"filter {node.name!r} is not available (available: {', '.join(FILTERS)})"
            )
        todo.extend((child, depth + 1) for child in node.iter_child_nodes())


def _refusal(node: nodes.Node) -> str:
    if isinstance(node, nodes.Stmt):
        return "only {{ expressions }} are allowed, not {% statements %}"
    if isinstance(node, nodes.Call):
        return "calling functions or methods is not allowed"
    return f"{type(node).__name__.lower()} expressions are not allowed"


def _bracket_depth(text: str) -> int:
    depth = deepest = 0
    for _, kind, value in _env.lex(text):
        if kind != "operator":
            continue
        if value in ("(", "[", "{"):
            depth += 1
            deepest = max(deepest, depth)
        elif value in (")", "]", "}"):
            depth -= 1
    return deepest


@functools.lru_cache(maxsize=256)
def _compile(text: str) -> tuple[Callable[[Mapping[str, Any]], Any], frozenset[str]]:
    """(a function of the context, the names the template reads); TemplateProblem if the
    template is not allowed. The same function serves check() and render()."""
    if len(text) > MAX_TEMPLATE_CHARS:
        raise TemplateProblem(f"template longer than {MAX_TEMPLATE_CHARS:,} characters")
    try:
        if _bracket_depth(text) > MAX_NESTING:
            raise TemplateProblem(f"nested more than {MAX_NESTING} levels deep")
        tree = _env.parse(text)
        _walk(tree)
        names = frozenset(jinja2.meta.find_undeclared_variables(tree))
        expression = _single_expression(text)
        if expression is not None:
            parser = Parser(_env, expression, state="variable")
            _walk(parser.parse_expression())
            compiled = _env.compile_expression(expression)
            return (lambda context: _bounded(compiled(**context))), names
        template = _env.from_string(tree)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(exc.message or "syntax error") from None
    except (RecursionError, SyntaxError, MemoryError):  # SyntaxError: Python's own limits
        raise TemplateProblem(f"nested more than {MAX_NESTING} levels deep") from None
    return (lambda context: _rendered(template, context)), names


def _bounded(value: Any) -> Any:
    """A one-expression template's result, which the runner may print (into a URL or a
    header): refused if it would print to more than MAX_OUTPUT_CHARS characters."""
    if _measure(value) > MAX_OUTPUT_CHARS:
        raise jinja2.exceptions.SecurityError(
            f"the template makes more than {MAX_OUTPUT_CHARS:,} characters"
        )
    return value


def _rendered(template: jinja2.Template, context: Mapping[str, Any]) -> str:
    out: list[str] = []
    size = 0
    for chunk in template.generate(**context):
        size += len(chunk)
        if size > MAX_OUTPUT_CHARS:
            raise jinja2.exceptions.SecurityError(
                f"the template makes more than {MAX_OUTPUT_CHARS:,} characters"
            )
        out.append(chunk)
    return "".join(out)


def check(text: str) -> frozenset[str]:
    """The names ``text`` reads; raises TemplateProblem if it may not be rendered."""
    return _compile(text)[1]


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """Fill ``{{ ... }}`` in every string; a string that is one expression keeps its type.

    Raises jinja2.TemplateError (a missing name, a refused operation), TemplateProblem,
    or what an expression raises (TypeError, ArithmeticError, ...).
    """
    if isinstance(value, str):
        if not is_template(value):
            return value
        return _compile(value)[0](context)
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    return value
