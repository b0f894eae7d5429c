"""Help that reads like a finished tool: `--force`, `--tail TEXT`, `APP`, never `<bool>` or `{APP}`.

Recent typer releases print a type for every parameter in --help, flags too (`--json <bool>`,
`services... <list[str]>`, usage `{APP}`). The root group tidies the whole command tree once,
before any parsing: flags show no value, an option's value is the classic TEXT, INTEGER,
FLOAT or PATH unless its declaration names it (metavar="URL"), an argument shows its name in
capitals. A test walks every command's help (tests/test_cli.py).
"""

from __future__ import annotations

import re

from typer.core import TyperArgument, TyperGroup

TYPE_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "path": "PATH", "Path": "PATH"}


class _Argument(TyperArgument):
    """An argument shown by its name alone: APP, [SERVICES]..., COMMAND..."""

    def display_type_rich(self, ctx):
        return None

    def _usage_display_name(self) -> str:
        name = self.metavar or (self.name or "").upper()
        dots = name.endswith("...")
        name = name.removesuffix("...")
        if not self.required:
            name = f"[{name}]"
        return name + ("..." if dots or self.nargs != 1 else "")


def _value_name(param, ctx) -> str | None:
    """TEXT, INTEGER, FLOAT or PATH for the type typer would print as <str>, <list[int]>..."""
    try:
        shown = param.display_type(ctx)
    except Exception:  # an older typer: it prints click's own TEXT, INTEGER... already
        return None
    inner = re.fullmatch(r"<(?:list\[)?(\w+)\]?>", shown or "")
    return TYPE_NAMES.get(inner.group(1)) if inner else None


def _tidy_param(param, ctx) -> None:
    if param.param_type_name == "argument":
        if type(param) is TyperArgument:
            param.__class__ = _Argument
        if param.metavar is None:
            param.metavar = (param.name or "").upper() + ("..." if param.nargs != 1 else "")
        return
    if param.metavar is not None:
        return
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        param.metavar = ""
    else:
        param.metavar = _value_name(param, ctx)


def tidy(command, ctx) -> None:
    """Tidy `command`'s parameters (its --help option too) and those of every command under it."""
    for param in command.get_params(ctx):  # with the help option, made for this context
        _tidy_param(param, ctx)
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None:
                tidy(sub, sub.context_class(sub, info_name=name, parent=ctx, **sub.context_settings))


def tidy_root(root) -> None:
    """Tidy the whole tree under the root command, once."""
    if not getattr(root, "_tidied", False):
        root._tidied = True
        tidy(root, root.context_class(root, info_name=root.name, **root.context_settings))


class Root(TyperGroup):
    """The root command group: tidies the tree's help, then runs as typer's own."""

    def main(self, *args, **kwargs):
        tidy_root(self)
        return super().main(*args, **kwargs)
