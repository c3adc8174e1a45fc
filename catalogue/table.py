"""The README's model table, generated from the catalogue: `python -m catalogue.table`
prints it, `python -m catalogue.table --write` puts it into README.md between its markers,
and a test fails when the README's copy is stale."""

from __future__ import annotations

import sys
from pathlib import Path

from catalogue import Catalogue, ModelSpec, get_catalogue

START, END = "<!-- models:start -->", "<!-- models:end -->"
README = Path(__file__).resolve().parents[1] / "README.md"


def _params(spec: ModelSpec) -> str:
    shown = []
    for name, param in spec.params.items():
        schema = param.schema
        if "enum" in schema:
            values = "\\|".join(str(v) for v in schema["enum"])
        elif "minimum" in schema and "maximum" in schema:
            values = f"{schema['minimum']}–{schema['maximum']}"
        else:
            values = str(schema.get("type"))
        default = f" ({schema['default']})" if schema.get("default") not in (None, "") else ""
        shown.append(f"`{name}` {values}{default}")
    return "; ".join(shown)


def _roles(spec: ModelSpec) -> str:
    if not spec.roles:
        return "—"
    shown = []
    for name, role in spec.roles.items():
        count = f"{role.min}–{role.max}" if role.min != role.max else f"{role.min}"
        kind = "" if role.kind == "image" else f" ({role.kind})"
        shown.append(f"{name}{kind} {count}")
    return ", ".join(shown)


def _prompt(spec: ModelSpec) -> str:
    if not spec.prompt_taken:
        return "—"
    return f"{spec.prompt_max_length}" + ("" if spec.prompt_required else " (optional)")


def markdown(catalogue: Catalogue | None = None) -> str:
    catalogue = catalogue or get_catalogue()
    lines = [
        "| model | kind | upstream | inputs | prompt ≤ | parameters (default) "
        "| credits (defaults) |",
        "|---|---|---|---|---|---|---|",
    ]
    for spec in catalogue.models.values():
        if spec.live:
            estimated = "" if spec.price_basis != "estimate" else " *"
            lines.append(
                f"| `{spec.id}` | {spec.kind} | {spec.upstream} | {_roles(spec)} "
                f"| {_prompt(spec)} | {_params(spec)} "
                f"| {spec.estimate(spec.validate_defaults()):g}{estimated} |"
            )
    live = len(catalogue.live)
    paused = "; ".join(
        f"`{spec.id}` ({spec.paused_reason})"
        for spec in catalogue.models.values()
        if spec.status == "paused"
    )
    retired = ", ".join(
        f"`{spec.id}` → `{spec.replaced_by}`"
        for spec in catalogue.models.values()
        if spec.status == "retired"
    )
    lines += [
        "",
        f"{live} live models. Credits marked * are family estimates (`price_basis = "
        '"estimate"`): Kie\'s price endpoint replaces them when it answers.',
        "",
        f"Paused (a `POST /jobs` naming one is a 422 `model_unavailable`): {paused}.",
        "",
        f"Retired (a `POST /jobs` naming one is a 422 `model_retired`): {retired}.",
    ]
    return "\n".join(lines)


def readme_with_table(text: str, table: str) -> str:
    before, _, rest = text.partition(START)
    _, _, after = rest.partition(END)
    return f"{before}{START}\n{table}\n{END}{after}"


def main() -> int:
    table = markdown()
    if "--write" in sys.argv:
        README.write_text(readme_with_table(README.read_text(), table))
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
