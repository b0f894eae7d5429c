"""A BOINC database's schema compared with a fresh project's, and the statements that close
the gap BOINC's own updates leave.

BOINC's html/ops/db_update.php moves a database from one release to the next, but not every
change to db/schema.sql and db/constraints.sql has an update: between server_release 1.4.7 and
1.6.2, varchar columns narrowed to 191 characters (utf8mb4 index limits) and user.name's index
became unique with none. A project upgraded by BOINC's tools alone would differ from one made
at the new release. The reference is the release's own definition: a scratch database made from
its schema.sql and constraints.sql, as make_project makes one (py/Boinc/database.py's
create_database), read back with SHOW CREATE TABLE.

What is aligned: a missing table is created; a missing column is added where the reference has
it; a column whose definition differs is modified (MariaDB refuses, and nothing is lost, where
data would not fit); an index missing or different is (re)made, one the reference lacks is
dropped. What is not: a column the reference lacks keeps its data and is reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# The scripts that define a fresh project's tables, in the order make_project runs them.
SCHEMA_SCRIPTS = ("schema.sql", "constraints.sql")
# make_project's database options (py/Boinc/database.py create_database).
DATABASE_OPTIONS = "character set utf8mb4 collate utf8mb4_unicode_ci"

_COLUMN = re.compile(r"^`(?P<name>[^`]+)` (?P<definition>.+)$")
_KEY = re.compile(r"^(?P<kind>PRIMARY|UNIQUE|FULLTEXT|SPATIAL)? ?KEY (`(?P<name>[^`]+)` )?(?P<columns>\(.+\))"
                  r"(?P<rest>.*)$")
_AUTO_INCREMENT = re.compile(r" AUTO_INCREMENT=\d+")


class SchemaError(Exception):
    """A SHOW CREATE TABLE text this module cannot read."""


@dataclass
class Table:
    name: str
    columns: dict[str, str] = field(default_factory=dict)  # name -> definition, in order
    keys: dict[str, str] = field(default_factory=dict)  # name ("PRIMARY" for the primary key) -> definition
    options: str = ""  # after the closing parenthesis, without AUTO_INCREMENT=N
    create: str = ""  # the statement as shown


def parse_table(create: str) -> Table:
    """One SHOW CREATE TABLE text."""
    lines = [line.strip().rstrip(",") for line in create.strip().splitlines()]
    head = re.match(r"^CREATE TABLE `([^`]+)` \($", lines[0]) if lines else None
    if not head or not lines[-1].startswith(")"):
        raise SchemaError(f"not a SHOW CREATE TABLE text: {create[:80]!r}")
    table = Table(head.group(1), options=_AUTO_INCREMENT.sub("", lines[-1][1:]).strip(), create=create)
    for line in lines[1:-1]:
        key = _KEY.match(line)
        column = _COLUMN.match(line)
        if column:
            table.columns[column.group("name")] = column.group("definition")
        elif key:
            name = "PRIMARY" if key.group("kind") == "PRIMARY" else key.group("name") or key.group("columns")
            table.keys[name] = line
        elif line.startswith("CONSTRAINT"):
            table.keys[line.split("`")[1]] = line
        else:
            raise SchemaError(f"table {table.name}: a line not understood: {line!r}")
    return table


def normalised(create: str) -> str:
    """SHOW CREATE TABLE without what differs between equal schemas (the next AUTO_INCREMENT)."""
    return _AUTO_INCREMENT.sub("", create.strip())


def _key_statement(table: str, name: str, definition: str) -> str:
    return f"ALTER TABLE `{table}` ADD {definition}"


def _drop_key(table: str, name: str) -> str:
    return f"ALTER TABLE `{table}` DROP PRIMARY KEY" if name == "PRIMARY" else f"ALTER TABLE `{table}` DROP KEY `{name}`"


def alignment(project: dict[str, str], reference: dict[str, str]) -> tuple[list[str], list[str]]:
    """(statements that make `project`'s tables as `reference`'s, notes on what is left), both
    given as {table: SHOW CREATE TABLE text}. Tables only the project has are left alone."""
    statements: list[str] = []
    notes: list[str] = []
    for name, ref_text in reference.items():
        if name not in project:
            statements.append(_AUTO_INCREMENT.sub("", ref_text.strip()))
            continue
        if normalised(project[name]) == normalised(ref_text):
            continue
        have, want = parse_table(project[name]), parse_table(ref_text)
        previous = None
        for column, definition in want.columns.items():
            where = f" AFTER `{previous}`" if previous else " FIRST"
            if column not in have.columns:
                statements.append(f"ALTER TABLE `{name}` ADD COLUMN `{column}` {definition}{where}")
            elif have.columns[column] != definition:
                statements.append(f"ALTER TABLE `{name}` MODIFY COLUMN `{column}` {definition}")
            previous = column
        for column in have.columns:
            if column not in want.columns:
                notes.append(f"{name}.{column} is not in a fresh project's schema; kept with its data")
        for key, definition in have.keys.items():
            if want.keys.get(key) != definition:
                statements.append(_drop_key(name, key))
        for key, definition in want.keys.items():
            if have.keys.get(key) != definition:
                statements.append(_key_statement(name, key, definition))
        if have.options != want.options:
            notes.append(f"{name}: table options {have.options!r}, a fresh project's {want.options!r}")
    return statements, notes


def differences(project: dict[str, str], reference: dict[str, str]) -> list[str]:
    """The tables whose SHOW CREATE TABLE differs from the reference's (or that one side lacks)."""
    names = sorted(set(project) | set(reference))
    return [n for n in names if normalised(project.get(n, "")) != normalised(reference.get(n, ""))]


def script_statements(text: str) -> list[str]:
    """The statements of one of BOINC's db/*.sql scripts, split as make_project splits them."""
    return [s.strip() for s in text.split(";") if s.strip()]
