"""Render docs/learners.md from the learner configs, so the doc cannot drift from the code.

Field descriptions are the attribute docstrings under each config field (read with `ast`).
`python -m shiftrl.learners.docs > docs/learners.md` regenerates it; a test checks it is current.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect

from shiftrl.learners import LEARNERS, ONLINE_LEARNERS
from shiftrl.learners.base import CommonConfig


def field_docs(cls: type) -> dict[str, str]:
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        body = ast.parse(inspect.getsource(klass)).body[0].body
        for node, nxt in zip(body, body[1:], strict=False):
            is_field = isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
            if is_field and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs


def _learner_section(name: str, cls: type) -> list[str]:
    common = {f.name for f in dataclasses.fields(CommonConfig)}
    lines = [f"## `{name}`: {cls.description}", "", f"Paper: {cls.paper}.", ""]
    docs = field_docs(cls.Config)
    lines += ["| field | default | meaning |", "|---|---|---|"]
    for f in dataclasses.fields(cls.Config):
        default = getattr(cls.Config(), f.name)
        note = docs.get(f.name, "")
        if f.name in common:
            note = (note + " (shared preprocessing field)").strip()
        lines.append(f"| `{f.name}` | `{default!r}` | {note} |")
    presets = ", ".join(f"`{p}`" for p in cls.PRESETS)
    lines += ["", f"Presets: {presets}.", ""]
    base = cls.Config()
    for pname, pcfg in cls.PRESETS.items():
        diff = {
            f.name: getattr(pcfg, f.name)
            for f in dataclasses.fields(pcfg)
            if getattr(pcfg, f.name) != getattr(base, f.name)
        }
        if diff:
            changes = ", ".join(f"{k}={v!r}" for k, v in diff.items())
            lines.append(f"- `{pname}`: {changes}")
    lines.append("")
    return lines


def render() -> str:
    lines = [
        "# Learners",
        "",
        "Generated from the config dataclasses by `python -m shiftrl.learners.docs`; do not edit.",
        "Override any field with `--set key=value` (CLI) or `overrides={...}` (Python).",
        "",
    ]
    for name, cls in LEARNERS.items():
        lines += _learner_section(name, cls)
    lines += [
        "## Online context learners (`shiftrl train-online`)",
        "",
        "Recurrent learners trained online from scratch (`shiftrl train-online --algo NAME`,",
        "`shiftrl.train_online`), typically on dynamics-randomized envs; run settings such as",
        "`num_envs`, `start_steps`, `utd`, `batch_size`, `eval_every` are `--set` keys too.",
        "",
    ]
    for name, cls in ONLINE_LEARNERS.items():
        lines += [
            "#" + line if line.startswith("## ") else line for line in _learner_section(name, cls)
        ]
    from shiftrl.recipes import RECIPES

    lines += [
        "## Recipes: a learner plus an add-on",
        "",
        "`--algo NAME` for these expands to the learner's preset plus the add-on, with the",
        "add-on's settings chosen per dataset from the paper's tables (docs/methods.md).",
        "",
        "| name | learner : preset | add-on | what |",
        "|---|---|---|---|",
    ]
    for r in RECIPES.values():
        lines.append(
            f"| `{r.name}` | `{r.learner}` : `{r.preset}` | `{r.addon}` | {r.description} |"
        )
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
