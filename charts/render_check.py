"""Offline renderer for the Helm charts in this folder: no `helm` binary, no cluster.

It implements the subset of Go's text/template and Sprig that `charts/*/templates` use, with
Helm's semantics where they matter (numbers from values are float64, missing map keys render
as "", field access through a missing value is an error, `range` over a map sorts its keys).
Templates added to the charts must stay inside this subset; `tests/test_charts.py` renders
every chart with it (and, when the real Helm engine is installed, checks both agree).

Supported:
  actions        {{ pipeline }}, {{- trims -}}, {{/* comments */}}
  control        if / else if / else / end, with / else / end, range (lists and maps, with
                 `$v :=` or `$k, $v :=`) / else / end, define / end
  variables      $ (the root), $x := pipeline, $x = pipeline (scoped like Go)
  operands       .Values.a.b, $.Release.Name, $x.field, "strings", `raw`, numbers,
                 true/false/nil, (sub pipelines), pipes `a | f b` (piped value goes last)
  functions      include, tpl-free Sprig: default, empty, required, fail, toYaml, toJson,
                 nindent, indent, quote, squote, trunc, trimSuffix, trimPrefix, trim, replace,
                 lower, upper, contains, hasPrefix, hasSuffix, printf (%s %v %d %q %%), print,
                 eq, ne, lt, le, gt, ge, and, or, not, has, hasKey, list, dict, get, keys,
                 sortAlpha, len, toString, int, sha256sum, b64enc, ternary, set
  objects        .Values, .Release (Name, Namespace, Service, IsInstall, IsUpgrade, Revision),
                 .Chart (Name, Version, AppVersion, ...), .Template (Name, BasePath)

Command line:
  python charts/render_check.py charts/convene [-f extra-values.yaml ...] [--name RELEASE]
      writes the manifests to stdout
  python charts/render_check.py charts/convene --sync-prompts prompts
      rewrites the prompts: block of charts/convene/values.yaml from the repo's prompts/
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import json
import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml


class TemplateError(Exception):
    """A template failed to parse or to execute (`fail`/`required` included)."""


# ---------------------------------------------------------------- lexing / parsing

_ACTION = re.compile(r"\{\{(-[ \t\r\n])?(.*?)([ \t\r\n]-)?\}\}", re.S)
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
  | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
  | (?P<field>(?:\.[A-Za-z0-9_]+)+|\.)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>:=|=|\||\(|\)|,)
    """,
    re.X,
)


@dataclass
class Field:
    base: str  # "." for dot, else a variable name such as "$" or "$x"
    path: list[str]


@dataclass
class Literal:
    value: Any


@dataclass
class Func:
    name: str


@dataclass
class Pipeline:
    cmds: list[list[Any]]  # each command: operands (Field | Literal | Func | Pipeline)
    decl: list[str] = field(default_factory=list)
    assign: bool = False  # `=` rather than `:=`


@dataclass
class Text:
    text: str


@dataclass
class Action:
    pipe: Pipeline


@dataclass
class If:
    branches: list[tuple[Pipeline, list[Any]]]
    else_body: list[Any]


@dataclass
class With:
    pipe: Pipeline
    body: list[Any]
    else_body: list[Any]


@dataclass
class Range:
    pipe: Pipeline
    body: list[Any]
    else_body: list[Any]


def _lex(source: str) -> list[tuple[str, str]]:
    """Split a template into ("text", s) and ("action", content) pieces, trims applied."""
    pieces: list[tuple[str, str]] = []
    pos = 0
    trim_next = False
    for match in _ACTION.finditer(source):
        text = source[pos : match.start()]
        if trim_next:
            text = text.lstrip(" \t\r\n")
        if match.group(1):
            text = text.rstrip(" \t\r\n")
        if text:
            pieces.append(("text", text))
        pieces.append(("action", match.group(2).strip()))
        trim_next = bool(match.group(3))
        pos = match.end()
    tail = source[pos:]
    if trim_next:
        tail = tail.lstrip(" \t\r\n")
    if tail:
        pieces.append(("text", tail))
    return pieces


def _tokenize(expr: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if not match:
            raise TemplateError(f"cannot parse {expr[pos:]!r} in {{{{ {expr} }}}}")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append((kind, match.group()))
        pos = match.end()
    return tokens


def _parse_pipeline(expr: str) -> Pipeline:
    tokens = _tokenize(expr)
    decl: list[str] = []
    assign = False
    # `$x :=`, `$x =`, `$k, $v :=`
    ops = [i for i, (kind, text) in enumerate(tokens) if kind == "op" and text in (":=", "=")]
    if ops and all(kind in ("var", "op") for kind, _ in tokens[: ops[0]]):
        decl = [text for kind, text in tokens[: ops[0]] if kind == "var"]
        assign = tokens[ops[0]][1] == "="
        tokens = tokens[ops[0] + 1 :]
    pipe, rest = _parse_cmds(tokens, expr)
    if rest:
        raise TemplateError(f"unexpected {rest[0][1]!r} in {{{{ {expr} }}}}")
    pipe.decl, pipe.assign = decl, assign
    return pipe


def _parse_cmds(tokens: list[tuple[str, str]], expr: str) -> tuple[Pipeline, list[tuple[str, str]]]:
    cmds: list[list[Any]] = [[]]
    while tokens:
        kind, text = tokens[0]
        if kind == "op" and text == ")":
            break
        tokens = tokens[1:]
        if kind == "op" and text == "|":
            cmds.append([])
        elif kind == "op" and text == "(":
            sub, tokens = _parse_cmds(tokens, expr)
            if not tokens or tokens[0][1] != ")":
                raise TemplateError(f"unclosed ( in {{{{ {expr} }}}}")
            tokens = tokens[1:]
            cmds[-1].append(sub)
        elif kind == "str":
            cmds[-1].append(Literal(json.loads(text)))
        elif kind == "raw":
            cmds[-1].append(Literal(text[1:-1]))
        elif kind == "num":
            is_int = re.fullmatch(r"-?\d+", text)
            cmds[-1].append(Literal(int(text) if is_int else float(text)))
        elif kind == "var":
            name, *path = text.split(".")
            cmds[-1].append(Field(name, path))
        elif kind == "field":
            cmds[-1].append(Field(".", [p for p in text.split(".") if p]))
        elif kind == "ident":
            constants = {"true": True, "false": False, "nil": None}
            cmds[-1].append(Literal(constants[text]) if text in constants else Func(text))
        else:
            raise TemplateError(f"unexpected {text!r} in {{{{ {expr} }}}}")
    if any(not cmd for cmd in cmds):
        raise TemplateError(f"empty command in {{{{ {expr} }}}}")
    return Pipeline(cmds), tokens


def _parse(source: str, defines: dict[str, list[Any]], name: str) -> list[Any]:
    pieces = _lex(source)
    pos = 0

    def block(stop: tuple[str, ...]) -> tuple[list[Any], str]:
        nonlocal pos
        body: list[Any] = []
        while pos < len(pieces):
            kind, text = pieces[pos]
            pos += 1
            if kind == "text":
                body.append(Text(text))
                continue
            word = text.split(None, 1)[0] if text else ""
            if text.startswith("/*"):
                continue
            if word in ("end", "else"):
                if word not in stop:
                    raise TemplateError(f"{name}: unexpected {{{{ {text} }}}}")
                return body, text
            if word == "if":
                body.append(if_node(text[2:]))
            elif word == "with":
                pipe = _parse_pipeline(text[4:])
                inner, closer = block(("end", "else"))
                other = block(("end",))[0] if closer == "else" else []
                body.append(With(pipe, inner, other))
            elif word == "range":
                pipe = _parse_pipeline(text[5:])
                inner, closer = block(("end", "else"))
                other = block(("end",))[0] if closer == "else" else []
                body.append(Range(pipe, inner, other))
            elif word == "define":
                define_name = json.loads(text[6:].strip())
                defines[define_name] = block(("end",))[0]
            elif word in ("template", "block", "break", "continue"):
                raise TemplateError(f"{name}: {{{{ {word} }}}} is outside the supported subset")
            else:
                body.append(Action(_parse_pipeline(text)))
        if stop:
            raise TemplateError(f"{name}: missing {{{{ end }}}}")
        return body, ""

    def if_node(cond: str) -> If:
        branches: list[tuple[Pipeline, list[Any]]] = []
        else_body: list[Any] = []
        pipe = _parse_pipeline(cond)
        while True:
            inner, closer = block(("end", "else"))
            branches.append((pipe, inner))
            if closer == "end":
                break
            rest = closer[4:].strip()
            if rest.startswith("if "):
                pipe = _parse_pipeline(rest[3:])
                continue
            if rest:
                raise TemplateError(f"{name}: unsupported {{{{ {closer} }}}}")
            else_body = block(("end",))[0]
            break
        return If(branches, else_body)

    return block(())[0]


# ---------------------------------------------------------------- values and printing


def _go_float(value: float) -> str:
    """Go's %v for a float64 (strconv 'g', shortest): 3 -> "3", 0.5 -> "0.5", 1e6 -> "1e+06"."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    sign, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    all_digits = "".join(map(str, digit_tuple))
    point = len(all_digits) + exponent  # digits before the decimal point
    stripped = all_digits.lstrip("0")
    point -= len(all_digits) - len(stripped)
    digits = stripped.rstrip("0")
    prefix = "-" if sign else ""
    exp10 = point - 1
    if exp10 < -4 or exp10 >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e{'+' if exp10 >= 0 else '-'}{abs(exp10):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return prefix + digits + "0" * (point - len(digits))
    return f"{prefix}{digits[:point]}.{digits[point:]}"


def _go_str(value: Any) -> str:
    """How text/template prints a value (Helm turns "<no value>" into "")."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, list):
        return "[" + " ".join(_go_str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_str(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def _truth(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str | list | dict | tuple):
        return len(value) > 0
    return True


def _as_float64(value: Any) -> Any:
    """Helm reads values through JSON: every number becomes a float64."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _as_float64(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_float64(v) for v in value]
    return value


def merge_values(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's coalescing: maps merge deeply, a null override deletes the key."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class _LiteralDumper(yaml.SafeDumper):
    pass


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _str_representer)


def _yaml_float(dumper: yaml.SafeDumper, value: float) -> yaml.Node:
    if value == int(value) and abs(value) < 1e21:
        return dumper.represent_int(int(value))
    return dumper.represent_float(value)


_LiteralDumper.add_representer(float, _yaml_float)


def to_yaml(value: Any) -> str:
    if value is None:
        return "null"
    text = yaml.dump(
        value,
        Dumper=_LiteralDumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=1 << 30,
    )
    text = text.removesuffix("\n...\n")
    return text.rstrip("\n")


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _printf(fmt: str, *args: Any) -> str:
    queue = list(args)
    out: list[str] = []
    pos = 0
    for match in re.finditer(r"%([-+ #0]*\d*(?:\.\d+)?)([svdq%])", fmt):
        out.append(fmt[pos : match.start()])
        pos = match.end()
        verb = match.group(2)
        if verb == "%":
            out.append("%")
            continue
        if not queue:
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = queue.pop(0)
        if verb == "d":
            if isinstance(arg, int) and not isinstance(arg, bool):
                out.append(str(arg))
            else:
                kind = "float64" if isinstance(arg, float) else type(arg).__name__
                out.append(f"%!d({kind}={_go_str(arg)})")
        elif verb == "q":
            out.append(_go_quote(_go_str(arg)))
        else:
            out.append(_go_str(arg))
    out.append(fmt[pos:])
    return "".join(out)


def _go_print(*args: Any) -> str:
    out = ""
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out += " "
        out += _go_str(arg)
    return out


def _empty(value: Any) -> bool:
    return not _truth(value)


def _default(fallback: Any, *given: Any) -> Any:
    if not given or _empty(given[0]):
        return fallback
    return given[0]


def _required(message: str, value: Any) -> Any:
    if value is None or value == "":
        raise TemplateError(message)
    return value


def _fail(message: str) -> Any:
    raise TemplateError(message)


def _trunc(length: Any, text: str) -> str:
    n = int(length)
    return text[:n] if n >= 0 else text[n:]


def _indent(spaces: Any, text: str) -> str:
    pad = " " * int(spaces)
    return pad + text.replace("\n", "\n" + pad)


def _set(target: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    target[key] = value
    return target


def _dict(*pairs: Any) -> dict[str, Any]:
    return {
        str(pairs[i]): pairs[i + 1] if i + 1 < len(pairs) else "" for i in range(0, len(pairs), 2)
    }


SPRIG: dict[str, Callable[..., Any]] = {
    "default": _default,
    "empty": _empty,
    "required": _required,
    "fail": _fail,
    "toYaml": to_yaml,
    "toJson": lambda v: json.dumps(v, sort_keys=True, separators=(",", ":")),
    "indent": _indent,
    "nindent": lambda n, s: "\n" + _indent(n, s),
    "quote": lambda *a: " ".join(_go_quote(_go_str(v)) for v in a if v is not None),
    "squote": lambda *a: " ".join(f"'{_go_str(v)}'" for v in a if v is not None),
    "trunc": _trunc,
    "trimSuffix": lambda suffix, s: s.removesuffix(suffix),
    "trimPrefix": lambda prefix, s: s.removeprefix(prefix),
    "trim": lambda s: s.strip(),
    "replace": lambda old, new, s: s.replace(old, new),
    "lower": lambda s: s.lower(),
    "upper": lambda s: s.upper(),
    "contains": lambda sub, s: sub in s,
    "hasPrefix": lambda prefix, s: s.startswith(prefix),
    "hasSuffix": lambda suffix, s: s.endswith(suffix),
    "printf": _printf,
    "print": _go_print,
    "eq": lambda a, *b: any(a == x for x in b),
    "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "not": lambda v: not _truth(v),
    "and": lambda *a: next((v for v in a if not _truth(v)), a[-1]),
    "or": lambda *a: next((v for v in a if _truth(v)), a[-1]),
    "has": lambda needle, haystack: needle in (haystack or []),
    "hasKey": lambda d, k: k in d,
    "list": lambda *a: list(a),
    "dict": _dict,
    "get": lambda d, k: d.get(k, ""),
    "keys": lambda *ds: [k for d in ds for k in d],
    "sortAlpha": lambda items: sorted(_go_str(v) for v in items),
    "len": lambda v: len(v) if v is not None else 0,
    "toString": _go_str,
    "int": lambda v: int(float(v)) if v not in (None, "") else 0,
    "sha256sum": lambda s: hashlib.sha256(s.encode()).hexdigest(),
    "b64enc": lambda s: base64.b64encode(s.encode()).decode(),
    "ternary": lambda yes, no, cond: yes if _truth(cond) else no,
    "set": _set,
}


# ---------------------------------------------------------------- execution


class _Scope:
    def __init__(self, root: Any) -> None:
        self.frames: list[dict[str, Any]] = [{"$": root}]

    def push(self) -> None:
        self.frames.append({})

    def pop(self) -> None:
        self.frames.pop()

    def declare(self, name: str, value: Any) -> None:
        self.frames[-1][name] = value

    def assign(self, name: str, value: Any) -> None:
        for frame in reversed(self.frames):
            if name in frame:
                frame[name] = value
                return
        raise TemplateError(f"undefined variable {name}")

    def get(self, name: str) -> Any:
        for frame in reversed(self.frames):
            if name in frame:
                return frame[name]
        raise TemplateError(f"undefined variable {name}")


_NOTHING = object()


class Engine:
    """Templates of one chart (defines shared across files, as in Helm)."""

    def __init__(self) -> None:
        self.defines: dict[str, list[Any]] = {}
        self.files: dict[str, list[Any]] = {}
        self.depth = 0

    def add(self, name: str, source: str) -> None:
        self.files[name] = _parse(source, self.defines, name)

    def render(self, name: str, root: dict[str, Any]) -> str:
        out: list[str] = []
        root = {**root, "Template": {**root.get("Template", {}), "Name": name}}
        self._exec(self.files[name], root, _Scope(root), out)
        return "".join(out)

    def include(self, name: str, dot: Any, root: Any) -> str:
        if name not in self.defines:
            raise TemplateError(f'no template "{name}" associated with template')
        self.depth += 1
        if self.depth > 100:
            raise TemplateError(f"include of {name} nested too deeply")
        try:
            out: list[str] = []
            self._exec(self.defines[name], dot, _Scope(root), out)
            return "".join(out)
        finally:
            self.depth -= 1

    def _exec(self, nodes: list[Any], dot: Any, scope: _Scope, out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, Text):
                out.append(node.text)
            elif isinstance(node, Action):
                value = self._pipeline(node.pipe, dot, scope)
                if not node.pipe.decl:
                    out.append(_go_str(value))
            elif isinstance(node, If):
                for pipe, body in node.branches:
                    if _truth(self._pipeline(pipe, dot, scope)):
                        self._block(body, dot, scope, out)
                        break
                else:
                    self._block(node.else_body, dot, scope, out)
            elif isinstance(node, With):
                value = self._pipeline(node.pipe, dot, scope)
                if _truth(value):
                    self._block(node.body, value, scope, out)
                else:
                    self._block(node.else_body, dot, scope, out)
            elif isinstance(node, Range):
                self._range(node, dot, scope, out)

    def _block(self, body: list[Any], dot: Any, scope: _Scope, out: list[str]) -> None:
        scope.push()
        try:
            self._exec(body, dot, scope, out)
        finally:
            scope.pop()

    def _range(self, node: Range, dot: Any, scope: _Scope, out: list[str]) -> None:
        pipe = Pipeline(node.pipe.cmds)
        items = self._pipeline(pipe, dot, scope)
        if isinstance(items, dict):
            pairs = [(k, items[k]) for k in sorted(items)]
        elif isinstance(items, list):
            pairs = list(enumerate(items))
        elif items is None:
            pairs = []
        else:
            raise TemplateError(f"range can't iterate over {_go_str(items)}")
        if not pairs:
            self._block(node.else_body, dot, scope, out)
            return
        for key, value in pairs:
            scope.push()
            try:
                if len(node.pipe.decl) == 1:
                    scope.declare(node.pipe.decl[0], value)
                elif len(node.pipe.decl) == 2:
                    scope.declare(node.pipe.decl[0], key)
                    scope.declare(node.pipe.decl[1], value)
                self._exec(node.body, value, scope, out)
            finally:
                scope.pop()

    def _pipeline(self, pipe: Pipeline, dot: Any, scope: _Scope) -> Any:
        value: Any = _NOTHING
        for cmd in pipe.cmds:
            value = self._command(cmd, dot, scope, value)
        if pipe.decl:
            if pipe.assign:
                scope.assign(pipe.decl[0], value)
            else:
                scope.declare(pipe.decl[0], value)
        return value

    def _command(self, cmd: list[Any], dot: Any, scope: _Scope, piped: Any) -> Any:
        head, *rest = cmd
        if isinstance(head, Func):
            args = [self._operand(arg, dot, scope) for arg in rest]
            if piped is not _NOTHING:
                args.append(piped)
            if head.name == "include":
                if len(args) != 2:
                    raise TemplateError("include takes a name and a context")
                return self.include(args[0], args[1], scope.get("$"))
            func = SPRIG.get(head.name)
            if func is None:
                raise TemplateError(f'function "{head.name}" not defined (outside the subset)')
            try:
                return func(*args)
            except TemplateError:
                raise
            except Exception as exc:
                raise TemplateError(f"error calling {head.name}: {exc}") from exc
        if rest or piped is not _NOTHING:
            raise TemplateError("can't give an argument to a non-function")
        return self._operand(head, dot, scope)

    def _operand(self, arg: Any, dot: Any, scope: _Scope) -> Any:
        if isinstance(arg, Literal):
            return arg.value
        if isinstance(arg, Pipeline):
            return self._pipeline(arg, dot, scope)
        if isinstance(arg, Func):
            return self._command([arg], dot, scope, _NOTHING)
        value = dot if arg.base == "." else scope.get(arg.base)
        walked = arg.base
        for name in arg.path:
            if isinstance(value, dict):
                value = value.get(name)
            elif value is None:
                raise TemplateError(f"nil pointer evaluating interface {{}}.{name} ({walked})")
            else:
                raise TemplateError(f"can't evaluate field {name} in {type(value).__name__}")
            walked += "." + name
        return value


# ---------------------------------------------------------------- charts


def load_chart(chart_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Chart.yaml as .Chart sees it, default values)."""
    meta = yaml.safe_load((chart_dir / "Chart.yaml").read_text()) or {}
    chart = {key[:1].upper() + key[1:]: value for key, value in meta.items()}
    values = yaml.safe_load((chart_dir / "values.yaml").read_text()) or {}
    return chart, values


def render_chart(
    chart_dir: Path | str,
    values: Mapping[str, Any] | None = None,
    *,
    name: str = "release-name",
    namespace: str = "default",
) -> dict[str, str]:
    """Render every template like `Chart.render`: {"<chart>/templates/<file>": text}."""
    chart_dir = Path(chart_dir)
    chart, defaults = load_chart(chart_dir)
    merged = _as_float64(merge_values(defaults, values or {}))
    engine = Engine()
    template_dir = chart_dir / "templates"
    names: list[str] = []
    for path in sorted(template_dir.rglob("*")):
        if path.is_file() and path.suffix in (".yaml", ".yml", ".tpl", ".txt"):
            rel = f"{chart['Name']}/templates/{path.relative_to(template_dir).as_posix()}"
            engine.add(rel, path.read_text())
            if not path.name.startswith("_"):
                names.append(rel)
    root: dict[str, Any] = {
        "Values": merged,
        "Release": {
            "Name": name,
            "Namespace": namespace,
            "Service": "Helm",
            "IsInstall": True,
            "IsUpgrade": False,
            "Revision": 1,
        },
        "Chart": chart,
        "Template": {"BasePath": f"{chart['Name']}/templates"},
    }
    return {rel: engine.render(rel, root) for rel in names}


PROMPTS_HEADER = "prompts:"


def prompts_block(prompts_dir: Path) -> str:
    """The `prompts:` block of charts/convene/values.yaml: the repo's prompts/*.yaml verbatim."""
    lines = [PROMPTS_HEADER]
    for path in sorted(prompts_dir.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        lines.append(f"  {path.name}: |")
        lines.extend(f"    {line}" if line else "" for line in text.rstrip("\n").split("\n"))
    return "\n".join(lines) + "\n"


def sync_prompts(values_path: Path, prompts_dir: Path) -> None:
    """Rewrite the trailing `prompts:` block of a values file from `prompts_dir`."""
    text = values_path.read_text(encoding="utf-8")
    marker = "\n" + PROMPTS_HEADER + "\n"
    if marker not in text:
        raise SystemExit(f"{values_path}: no top-level `{PROMPTS_HEADER}` block to replace")
    head = text[: text.rindex(marker) + 1]
    values_path.write_text(head + prompts_block(prompts_dir), encoding="utf-8")


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("chart", type=Path)
    parser.add_argument("-f", "--values", type=Path, action="append", default=[])
    parser.add_argument("--name", default="release-name")
    parser.add_argument("--namespace", default="default")
    parser.add_argument(
        "--sync-prompts",
        type=Path,
        metavar="PROMPTS_DIR",
        help="rewrite the chart's values.yaml `prompts:` block from PROMPTS_DIR/*.yaml instead",
    )
    args = parser.parse_args(argv)
    if args.sync_prompts:
        sync_prompts(args.chart / "values.yaml", args.sync_prompts)
        return 0
    values: dict[str, Any] = {}
    for path in args.values:
        values = merge_values(values, yaml.safe_load(path.read_text()) or {})
    rendered = render_chart(args.chart, values, name=args.name, namespace=args.namespace)
    for rel, text in rendered.items():
        if rel.endswith("NOTES.txt") or not text.strip():
            continue
        body = text.lstrip("\n")
        sys.stdout.write(f"---\n# Source: {rel}\n{body}" + ("" if body.endswith("\n") else "\n"))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
