"""Split a Markdown file into YAML front matter and body, keeping line numbers.

python-frontmatter drops line numbers and lets PyYAML turn '2021-13-01' into a
crash, so we split the file ourselves and compose the YAML with a loader that
leaves timestamps as text: every problem can then name the line it is on, and
dates are parsed (and refused) by our own rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from publisher.errors import Problem

_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_DELIMITERS = ("---", "...")


# libyaml's parser when present (same marks and errors, several times faster on big sites).
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # type: ignore[assignment]


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """Safe loading without the timestamp resolver: dates stay strings until we parse them."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class Document:
    """One parsed Markdown file: its front matter with key lines, and its body."""

    meta: dict[str, Any]
    key_lines: dict[str, int]  # top-level key -> 1-based line in the file
    value_nodes: dict[str, yaml.Node]  # top-level key -> its value node (for item lines)
    body: str  # Markdown, leading blank lines and trailing whitespace removed
    body_line: int  # line of the body's first line in the file

    def line(self, key: str) -> int | None:
        return self.key_lines.get(key)

    def item_line(self, key: str, index: int) -> int | None:
        """Line of item ``index`` of a YAML sequence value (falls back to the key's line)."""
        node = self.value_nodes.get(key)
        if isinstance(node, yaml.SequenceNode) and index < len(node.value):
            return node.value[index].start_mark.line + _OFFSET
        return self.line(key)


_OFFSET = 2  # YAML's line 0 is the file's line 2 (line 1 is the opening '---')


def decode(raw: bytes, where: str, problems: list[Problem]) -> str | None:
    """UTF-8 text of a file (a BOM is dropped), or a problem naming the bad line."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problems.append(Problem(where, "not valid UTF-8 text (save the file as UTF-8)", line))
        return None


def parse_document(text: str, where: str, problems: list[Problem]) -> Document | None:
    """Parse ``text``; append every problem found to ``problems`` and return None if unusable."""
    lines = [ln.removesuffix("\r") for ln in text.split("\n")]
    if not lines or lines[0].rstrip() != "---":
        problems.append(
            Problem(where, "no front matter: start the file with a '---' line, then title: and date:", 1)
        )
        return None
    close = next((i for i in range(1, len(lines)) if lines[i].rstrip() in _DELIMITERS), None)
    if close is None:
        problems.append(Problem(where, "front matter is not closed: add a '---' line after it", 1))
        return None
    yaml_text = "\n".join(lines[1:close])
    parsed = _compose(yaml_text, where, problems)
    if parsed is None:
        return None
    meta, key_lines, value_nodes = parsed
    body_lines = lines[close + 1 :]
    body_line = close + 2
    while body_lines and not body_lines[0].strip():
        body_lines.pop(0)
        body_line += 1
    body = "\n".join(body_lines).rstrip()
    return Document(meta, key_lines, value_nodes, body + "\n" if body else "", body_line)


def _compose(
    yaml_text: str, where: str, problems: list[Problem]
) -> tuple[dict[str, Any], dict[str, int], dict[str, yaml.Node]] | None:
    loader = _Loader(yaml_text)
    node: yaml.Node | None = None
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + _OFFSET if mark is not None else 1
        reason = getattr(exc, "problem", None) or str(exc)
        problems.append(Problem(where, f"front matter is not valid YAML: {reason}", line))
        return None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits (Python's int limit)
        line = _first_huge_scalar_line(node) if node is not None else 1
        problems.append(Problem(where, f"front matter has a value YAML cannot read: {str(exc)[:80]}", line))
        return None
    finally:
        loader.dispose()
    if data is None:
        return {}, {}, {}
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        problems.append(Problem(where, "front matter must be 'key: value' lines (title:, date:, ...)", 2))
        return None
    key_lines: dict[str, int] = {}
    value_nodes: dict[str, yaml.Node] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        line = key_node.start_mark.line + _OFFSET
        if key in key_lines:
            problems.append(
                Problem(where, f"{key}: given twice (also on line {key_lines[key]}); keep one", line)
            )
            continue
        key_lines[key] = line
        value_nodes[key] = value_node
    return {str(k): v for k, v in data.items()}, key_lines, value_nodes


def _first_huge_scalar_line(node: yaml.Node, limit: int = 4000) -> int:
    """The line of the first scalar too long to convert (where a ValueError came from), else 1."""
    todo = [node]
    while todo:
        n = todo.pop(0)
        if isinstance(n, yaml.ScalarNode) and len(str(n.value)) > limit:
            return int(n.start_mark.line) + _OFFSET
        if isinstance(n, yaml.SequenceNode):
            todo.extend(n.value)
        elif isinstance(n, yaml.MappingNode):
            todo.extend(v for pair in n.value for v in pair)
    return 1
