"""Functions that are both long and branchy: more than 60 lines and more than 10 branches.

Issue 14's rule for code outside tests: a function may be long (a table, a resource with many
properties) or branchy (a validator), not both. Lines are the function's source lines, from its
`def` (decorators excluded) to its last line; branches are its decision points - `if`/`elif`,
conditional expressions, `for`, `while`, `except` clauses, `match` cases and the `if`s of
comprehensions - not counting those of functions nested inside it, which are measured on their own.

    python scripts/function_size.py [PATH ...]   # default: every .py file outside tests/ and venvs

Prints one line per offending function (path:line name lines branches) and exits 1 if any.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_LINES = 60
MAX_BRANCHES = 10
ROOT = Path(__file__).resolve().parent.parent
SKIPPED_DIRS = frozenset({"tests", ".venv", "venv", "node_modules", "__pycache__", ".git", "build", "dist"})
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_SCOPES = (*_FUNCTIONS, ast.Lambda, ast.ClassDef)
_BRANCHES = (ast.If, ast.IfExp, ast.For, ast.AsyncFor, ast.While, ast.ExceptHandler, ast.match_case)


@dataclass(frozen=True)
class FunctionSize:
    path: str
    line: int
    name: str
    lines: int
    branches: int

    @property
    def too_big(self) -> bool:
        return self.lines > MAX_LINES and self.branches > MAX_BRANCHES

    def __str__(self) -> str:
        return f"{self.path}:{self.line} {self.name} {self.lines} lines {self.branches} branches"


def _own_nodes(function: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a function's body, without descending into nested functions, lambdas or classes."""
    pending = list(ast.iter_child_nodes(function))
    while pending:
        node = pending.pop()
        yield node
        if not isinstance(node, _SCOPES):
            pending.extend(ast.iter_child_nodes(node))


def branches(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    count = 0
    for node in _own_nodes(function):
        if isinstance(node, _BRANCHES):
            count += 1
        elif isinstance(node, ast.comprehension):
            count += len(node.ifs)
    return count


def measure(source: str, path: str = "<source>") -> list[FunctionSize]:
    """Every function and method in `source`, nested ones included, with its lines and branches."""
    sizes: list[FunctionSize] = []
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, _FUNCTIONS):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            sizes.append(FunctionSize(path, node.lineno, node.name, lines, branches(node)))
    return sorted(sizes, key=lambda size: size.line)


def python_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_file() and path.suffix == ".py":
            yield path
        elif path.is_dir():
            for found in sorted(path.rglob("*.py")):
                if not SKIPPED_DIRS.intersection(found.relative_to(path).parts[:-1]):
                    yield found


def too_big(paths: Iterable[Path], root: Path = ROOT) -> list[FunctionSize]:
    found: list[FunctionSize] = []
    for file in python_files(paths):
        shown = file.resolve().relative_to(root).as_posix() if file.resolve().is_relative_to(root) else str(file)
        found.extend(size for size in measure(file.read_text(), shown) if size.too_big)
    return found


def main(argv: list[str]) -> int:
    offenders = too_big([Path(arg) for arg in argv] or [ROOT])
    for size in offenders:
        print(size)
    return 1 if offenders else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
