"""The package's layout keeps its promises (CONTRIBUTING.md): no import circle, functions a reader can hold, no
private name taken from another module, and model files that travel as remote code on their own.

The layers themselves (each subpackage importing only from the ones before it, the command lines on top) are
import-linter's contracts in pyproject.toml, checked by ``lint-imports`` in CI and by the first test here; the
second holds every room to that list.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import bidirectional_conv_lstm

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(bidirectional_conv_lstm.__file__).parent
MODEL_FOLDER = PACKAGE / "models" / "convlstm"
MAX_FUNCTION_LINES = 60
# A longer function carries its reason in a comment right above it (above its decorators).
LONG_REASON = "# Long:"


def _sources():
    return sorted(PACKAGE.rglob("*.py"))


def test_import_contracts_hold():
    if shutil.which("lint-imports", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports")], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_every_room_is_a_layer_with_the_commands_on_top():
    """Each subpackage of the package is in the layers contract of pyproject.toml (a new room cannot slip past
    the checks), in CONTRIBUTING.md's order: the command lines on top, the model files at the bottom."""
    tomllib = pytest.importorskip("tomllib")
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(contract["layers"] for contract in contracts if contract["type"] == "layers")
    rooms = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert sorted(layer.rsplit(".", 1)[-1] for layer in layers) == sorted(rooms)
    assert layers[0].endswith(".commands") and layers[-1].endswith(".models")
    order = [layer.rsplit(".", 1)[-1] for layer in reversed(layers)]
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    drawn = [room for room in order if f"\n{room}/" in contributing or f"\n{room}/convlstm/" in contributing]
    positions = [contributing.index(f"\n{room}/") for room in drawn]
    assert drawn == order and positions == sorted(positions, reverse=True), "CONTRIBUTING.md's house drawing"


def _cycles(graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_circle():
    """Every import, at the top of a module or inside a function, counts: a circle is broken at its cause."""
    grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter (pip install -e '.[dev]')")
    graph = grimp.build_graph("bidirectional_conv_lstm")
    assert "bidirectional_conv_lstm.nowcasting.task" in graph.modules  # the graph is the package's
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_circle():
    class Graph:
        modules = {"a", "b", "c"}
        edges = {"a": {"b"}, "b": {"a"}, "c": {"a"}}

        def find_modules_directly_imported_by(self, module):
            return self.edges[module]

    assert _cycles(Graph()) == [["a", "b"]]


def _long_functions(path: Path) -> list[str]:
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        length = node.end_lineno - node.lineno + 1
        first = node.body[0]
        if (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        ):
            length -= first.end_lineno - first.lineno + 1  # the docstring is the reader's help, not a burden
        top = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
        reason = lines[top - 2].strip() if top >= 2 else ""
        if length > MAX_FUNCTION_LINES and not reason.startswith(LONG_REASON):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_functions_a_reader_can_hold():
    too_long = [entry for path in _sources() for entry in _long_functions(path)]
    assert too_long == [], (
        f"functions over {MAX_FUNCTION_LINES} lines (docstring aside) without a '{LONG_REASON} ...' comment above: "
        f"{too_long}"
    )


def test_long_function_check_reads_the_reason(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES + 1))
    plain = ROOT / "tests" / ".long_function_probe.py"
    try:
        plain.write_text(f"def f():\n{body}\n")
        assert _long_functions(plain) == [
            f"tests/.long_function_probe.py:1 f ({MAX_FUNCTION_LINES + 2} lines)"
        ]
        plain.write_text(f"{LONG_REASON} one table of cases\n@staticmethod\ndef f():\n{body}\n")
        assert _long_functions(plain) == []
    finally:
        plain.unlink(missing_ok=True)


def test_no_private_name_imported_across_modules():
    taken = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (
                node.level > 0 or (node.module or "").startswith(PACKAGE.name)
            ):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        taken.append(f"{path.relative_to(ROOT)}: {alias.name} from {node.module}")
    assert taken == []


def test_model_files_import_only_torch_transformers_and_each_other():
    """The folder saved models carry as remote code: single-dot relative imports, and only libraries a model
    user has (transformers copies `from .name import` files by name and cannot follow `..` or `.sub.name`)."""
    # huggingface_hub and safetensors come with transformers
    allowed = set(sys.stdlib_module_names) | {
        "torch",
        "numpy",
        "transformers",
        "safetensors",
        "huggingface_hub",
        "PIL",
    }
    files = [path for path in MODEL_FOLDER.glob("*.py") if path.name != "__init__.py"]
    assert {"modeling_convlstm.py", "configuration_convlstm.py", "pipeline_convlstm.py"} <= {
        p.name for p in files
    }
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                assert node.level == 1 and node.module and "." not in node.module, (path.name, node.module)
                assert (MODEL_FOLDER / f"{node.module}.py").is_file(), (path.name, node.module)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = (
                    [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module]
                )
                for name in names:
                    assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
