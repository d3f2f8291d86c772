"""Reading policy text: the bounded YAML loader with YAML 1.2-style scalars and source lines, and
the bounded JSON reader. Pure: text in, documents out (no file is opened here).

Why a custom YAML loader: YAML 1.1 reads ``start: 10:30`` as the base-60 integer 630 and
``name: no`` as ``False``; the loader resolves only ``true``/``false`` as booleans and plain
decimal numbers as numbers, everything else stays a string.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

from hub.alerts.policy_model import MAX_DEPTH, MAX_INT_DIGITS, MAX_NODES, MAX_TEXT_CHARS, PolicySyntaxError, Problem


class _PolicyLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2-style scalars (see the module docstring), bounded: nesting
    deeper than :data:`MAX_DEPTH` and integers longer than :data:`MAX_INT_DIGITS` stop the
    composer with a YAML error (the caller's 400); expansion is checked per document by
    :func:`_expanded_nodes`."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep", event.start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_yaml_int(self, node: Any) -> Any:
        digits = str(node.value).lstrip("+-")
        if len(digits) > MAX_INT_DIGITS:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"an integer of {len(digits)} digits; at most {MAX_INT_DIGITS} are accepted",
                node.start_mark,
            )
        return super().construct_yaml_int(node)


_PolicyLoader.add_constructor("tag:yaml.org,2002:int", _PolicyLoader.construct_yaml_int)


def _expanded_nodes(root: yaml.Node, limit: int) -> int:
    """Nodes of ``root`` with every alias expanded (an alias shares its anchor's node object),
    counted without recursion and memoised per node; stops past ``limit`` (also on a cycle)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if done:
            open_nodes.discard(key)
            sizes[key] = min(limit + 1, 1 + sum(sizes[id(c)] for c in children))
            continue
        if key in sizes:
            continue
        if key in open_nodes:  # an alias to an enclosing node: infinitely large
            return limit + 1
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


_PolicyLoader.yaml_implicit_resolvers = {
    first: [
        (tag, rx)
        for tag, rx in resolvers
        if tag not in {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


_PolicyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


_PolicyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)


_PolicyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$|^[-+]?[0-9]+[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


@dataclass
class SourceDocument:
    data: Any
    lines: dict[str, int]  # field path -> 1-based line
    problems: list[Problem]  # structural problems found while reading (duplicate keys)


def _walk_lines(node: yaml.Node, path: str, lines: dict[str, int], problems: list[Problem], seen: set[int]) -> None:
    if id(node) in seen:  # an alias: its lines were recorded where the anchor is
        return
    seen.add(id(node))
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = f"{path}.{key}" if path else key
            if key in keys:
                problems.append(
                    Problem(child, "duplicate key; the later value would silently win", key_node.start_mark.line + 1)
                )
            keys.add(key)
            lines[child] = key_node.start_mark.line + 1
            _walk_lines(value_node, child, lines, problems, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk_lines(item, f"{path}[{i}]", lines, problems, seen)


def load_documents(text: str) -> list[SourceDocument]:
    """Parse YAML (or JSON, a subset of it) into documents with a path -> line map.

    Raises PolicySyntaxError (400) naming the line when the text does not parse.
    """
    docs: list[SourceDocument] = []
    if len(text) > MAX_TEXT_CHARS:
        raise PolicySyntaxError(f"the document has {len(text)} characters; at most {MAX_TEXT_CHARS} are accepted")
    try:
        loader = _PolicyLoader(text)
    except yaml.YAMLError as exc:  # the reader rejects control characters up front
        raise PolicySyntaxError(f"not valid YAML: {exc}") from exc
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            expanded = _expanded_nodes(node, MAX_NODES)
            if expanded > MAX_NODES:
                raise PolicySyntaxError(
                    f"the document expands (aliases included) to more than {MAX_NODES} values",
                    line=node.start_mark.line + 1,
                )
            lines: dict[str, int] = {}
            problems: list[Problem] = []
            _walk_lines(node, "", lines, problems, set())
            docs.append(SourceDocument(loader.construct_document(node), lines, problems))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = exc.problem or exc.context or "cannot parse"
        raise PolicySyntaxError(f"not valid YAML at line {line}: {what}", line=line) from exc
    except yaml.YAMLError as exc:
        raise PolicySyntaxError(f"not valid YAML: {exc}") from exc
    finally:
        loader.dispose()
    return docs


def decode_policy_text(text: str, *, content_type: str = "yaml") -> SourceDocument:
    """One document from JSON or YAML text, with its line map; PolicySyntaxError (400) if it
    does not parse or holds more or less than one document."""
    if content_type == "json":
        if len(text) > MAX_TEXT_CHARS:
            raise PolicySyntaxError(f"the document has {len(text)} characters; at most {MAX_TEXT_CHARS} are accepted")
        try:
            data = json.loads(text, parse_int=_json_int, parse_constant=_json_constant)
        except json.JSONDecodeError as exc:
            raise PolicySyntaxError(f"not valid JSON at line {exc.lineno}: {exc.msg}", line=exc.lineno) from exc
        except (ValueError, RecursionError) as exc:  # digits, NaN, or nesting past the decoder's stack
            raise PolicySyntaxError(f"not acceptable JSON: {str(exc)[:200]}") from exc
        return SourceDocument(data, {}, [])
    docs = load_documents(text)
    if len(docs) != 1:
        raise PolicySyntaxError(f"expected exactly one policy document, found {len(docs)}")
    return docs[0]


def _json_int(raw: str) -> int:
    if len(raw.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(raw)} digits; at most {MAX_INT_DIGITS} are accepted")
    return int(raw)


def _json_constant(raw: str) -> Any:
    raise ValueError(f"{raw} is not a number JSON allows")


def _r(value: Any, limit: int = 60) -> str:
    """``repr`` cut to ``limit`` characters: a problem message must never echo an expanded
    document (an alias bomb's value is megabytes long)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
