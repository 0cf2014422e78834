"""Writes docs/roles/<role>.md from each role's meta/argument_specs.yml; --check fails when one is stale.

Why not antsibull-docs (2.28), which also builds role pages from the argument specs: its pages are for a
Sphinx docsite (``--output-format ansible-docsite``); the one format meant to be read as is,
``simplified-rst``, is marked experimental and puts every parameter table in a ``.. raw:: html`` block,
which GitHub's renderer drops, so the pages would lose exactly the tables they exist for. It also needs
every collection of galaxy.yml's dependencies installed and tells readers to install gpufleet.llm from
Galaxy. The plugins' documentation is checked with antsibull-docs all the same (``make docs-lint``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def text(value) -> str:
    lines = value if isinstance(value, list) else [value]
    return " ".join(str(line).strip() for line in lines).replace("|", "\\|")


def default(option: dict) -> str:
    if "default" not in option:
        return "*required*" if option.get("required") else ""
    dumped = yaml.safe_dump(option["default"], default_flow_style=True, width=1000)
    return f"`{dumped.strip().removesuffix('...').strip()}`"


def render(role: str) -> str:
    specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    out = [f"# Role `gpufleet.llm.{role}`", "",
           "<!-- Generated from meta/argument_specs.yml by tests/role_docs.py. -->", ""]
    for entry_point, spec in specs.items():
        if entry_point != "main":
            out += [f"## Entry point `{entry_point}` (`tasks_from: {entry_point}`)", ""]
        out += render_entry_point(spec)
    return "\n".join(out) + "\n"


def render_entry_point(spec: dict) -> list[str]:
    out = [text(spec.get("short_description", "")), ""]
    description = spec.get("description", [])
    out += [text(paragraph) + "\n" for paragraph in (description if isinstance(description, list) else [description])]
    out += ["| Variable | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for name, option in spec.get("options", {}).items():
        kind = option.get("type", "str")
        if kind == "list" and "elements" in option:
            kind = f"list of {option['elements']}"
        if "choices" in option:
            kind += " (" + ", ".join(f"`{c}`" for c in option["choices"]) + ")"
        out.append(f"| `{name}` | {kind} | {default(option)} | {text(option.get('description', ''))} |")
    return [*out, ""]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a page differs from its argument specs")
    args = parser.parse_args()
    stale = []
    roles = sorted(p.parent.parent.name for p in ROOT.glob("roles/*/meta/argument_specs.yml"))
    for role in roles:
        page = ROOT / "docs" / "roles" / f"{role}.md"
        content = render(role)
        if page.exists() and page.read_text() == content:
            continue
        if args.check:
            stale.append(str(page.relative_to(ROOT)))
        else:
            page.parent.mkdir(parents=True, exist_ok=True)
            page.write_text(content)
    if stale:
        print("stale role pages (run `make docs`):", *stale, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
