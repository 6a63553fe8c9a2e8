"""``GET /api/docs``: the admin API's reference, a plain HTML page made from its OpenAPI schema.

Not Swagger UI or ReDoc: both are JavaScript apps loaded from a CDN (our CSP
allows no outside script and we cannot vendor them here), and both fetch the
schema and call the API from the browser, which on a plain GET cannot send the
bearer token every /api answer needs. This page has no script: every operation
with its parameters, body, answers and errors, then the models, all escaped.
It sits behind the same token check as the API (reach it with
``curl -H 'Authorization: Bearer …'`` or a browser tool that adds the header);
``/openapi.json`` stays open for tools.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from fastapi import Request
from starlette.responses import HTMLResponse

from publisher.web.api_guard import guarded_router

router = guarded_router()
METHODS = ("get", "post", "put", "patch", "delete")
CONSTRAINTS = {
    "minimum": "≥ {}",
    "maximum": "≤ {}",
    "exclusiveMinimum": "> {}",
    "maxLength": "at most {} characters",
    "maxItems": "at most {} items",
    "pattern": "matches {}",
    "default": "default {}",
}

Schema = dict[str, Any]


def type_of(schema: Schema | bool) -> str:
    """A schema as words: 'int', 'list of str', 'SubscriberOut', 'one of a, b', 'str or null'."""
    if isinstance(schema, bool):  # JSON Schema's `true`: anything (a dict of free-form values)
        return "any" if schema else "nothing"
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(type_of(s) for s in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    if schema.get("type") == "array":
        return "list of " + type_of(schema.get("items", {}))
    if schema.get("type") == "object" and "additionalProperties" in schema:
        return "map of " + type_of(schema["additionalProperties"])
    kind = str(schema.get("type", "any"))
    return f"{kind} ({schema['format']})" if "format" in schema else kind


def notes(schema: Schema) -> str:
    """Constraints and description of a parameter or field, in one line."""
    found = [schema.get("description", "")]
    for inner in [schema, *schema.get("anyOf", []), schema.get("items", {})]:
        found += [text.format(inner[key]) for key, text in CONSTRAINTS.items() if key in inner]
    return "; ".join(dict.fromkeys(x for x in found if x))


def table(head: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    """An HTML table of already escaped cells."""
    cells = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>\n" for row in rows)
    return "<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + f"</tr>\n{cells}</table>\n"


def _code(text: str) -> str:
    return f"<code>{html.escape(text)}</code>"


def operation(method: str, path: str, op: Schema) -> str:
    """One operation: its summary, parameters, body and answers."""
    anchor = html.escape(op.get("operationId", f"{method}-{path}"), quote=True)
    parts = [f'<section id="{anchor}">\n<h2>{_code(method.upper() + " " + path)}</h2>\n']
    parts.append(f"<p>{html.escape(op.get('summary', ''))}</p>\n")
    params = [
        (
            _code(p["name"]),
            p["in"],
            "yes" if p.get("required") else "no",
            html.escape(type_of(p["schema"])),
            html.escape(notes({**p["schema"], "description": p.get("description", "")})),
        )
        for p in op.get("parameters", [])
    ]
    if params:
        parts.append("<h3>Parameters</h3>\n" + table(("name", "in", "required", "type", "notes"), params))
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if body:
        parts.append(f"<h3>Body (JSON)</h3>\n<p>{html.escape(type_of(body))}, see Models</p>\n")
    answers = [
        (
            _code(code),
            html.escape(r.get("description", "")),
            html.escape(type_of(r.get("content", {}).get("application/json", {}).get("schema", {}))),
        )
        for code, r in sorted(op.get("responses", {}).items())
    ]
    parts.append("<h3>Answers</h3>\n" + table(("status", "meaning", "body"), answers) + "</section>\n")
    return "".join(parts)


def model(name: str, schema: Schema) -> str:
    """One model: its fields, their types, whether required, and their constraints."""
    required = set(schema.get("required", []))
    rows = [
        (_code(field), html.escape(type_of(s)), "yes" if field in required else "no", html.escape(notes(s)))
        for field, s in schema.get("properties", {}).items()
    ]
    intro = f"<p>{html.escape(schema['description'])}</p>\n" if schema.get("description") else ""
    return f'<h3 id="model-{html.escape(name, quote=True)}">{html.escape(name)}</h3>\n{intro}' + table(
        ("field", "type", "required", "notes"), rows
    )


def docs_page(spec: Schema) -> str:
    """The whole reference page for an OpenAPI document."""
    info = spec.get("info", {})
    title = html.escape(f"{info.get('title', 'API')} {info.get('version', '')}".strip())
    ops = [
        (method, path, op)
        for path, item in spec.get("paths", {}).items()
        for method, op in item.items()
        if method in METHODS
    ]
    index = "".join(
        f'<li><a href="#{html.escape(op.get("operationId", ""), quote=True)}">'
        f"{_code(method.upper() + ' ' + path)}</a> {html.escape(op.get('summary', ''))}</li>\n"
        for method, path, op in ops
    )
    models = spec.get("components", {}).get("schemas", {})
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>{title}</title></head>\n'
        f"<body>\n<h1>{title}</h1>\n<p>{html.escape(info.get('description', ''))}</p>\n"
        "<p>Every request needs <code>Authorization: Bearer &lt;token&gt;</code>; errors answer "
        "<code>ErrorOut</code> JSON. The machine-readable schema is <code>/openapi.json</code>.</p>\n"
        f"<ul>\n{index}</ul>\n"
        + "".join(operation(m, p, op) for m, p, op in ops)
        + "<h2>Models</h2>\n"
        + "".join(model(name, s) for name, s in sorted(models.items()))
        + "</body>\n</html>\n"
    )


@router.get("/docs", response_class=HTMLResponse, include_in_schema=False)
async def api_docs(request: Request) -> HTMLResponse:
    return HTMLResponse(docs_page(request.app.openapi()))
