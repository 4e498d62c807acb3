"""The layout of the Python package (issue 19): one folder per op, one registry table, and
imports that point one way (fastsnn.functional -> fastsnn.ops, never back).

Read from the source with ast (no import runs): every ``import`` and ``from ... import``, at
module level and inside functions, relative ones resolved against the importing module.
"""

import ast
from pathlib import Path

import pytest

from fastsnn.ops import registry

PKG = Path(__file__).resolve().parent.parent / "fastsnn"
OP_FOLDERS = ("lif", "li", "rlif")
OP_FILES = ("ref.py", "function.py", "triton.py", "fake.py")
# what the ops sit below: nothing under fastsnn/ops may import these
ABOVE_OPS = ("fastsnn.functional", "fastsnn.nn", "fastsnn.train")


def module_name(path):
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules():
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def imports(path, name, mods=()):
    """(imported module, the alias it is bound to or None, line) for every import in the file.
    ``from a import b`` gives a.b, and a too unless a.b is one of ``mods`` (then b is a
    submodule, and the import of the package a itself is only its __init__ running first)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, a.asname, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            subs = [(f"{target}.{a.name}", a.asname or a.name, node.lineno) for a in node.names]
            if not all(t in mods for t, _, _ in subs):
                found.append((target, None, node.lineno))
            found += subs
    return found


def imports_module(target, prefix):
    return target == prefix or target.startswith(prefix + ".")


def test_the_scan_reads_relative_and_function_level_imports():
    got = {t for t, _, _ in imports(PKG / "ops" / "lif" / "function.py",
                                    "fastsnn.ops.lif.function")}
    assert "fastsnn.ops._function" in got
    got = {t for t, _, _ in imports(PKG / "_backends.py", "fastsnn._backends")}
    assert "fastsnn.ops.registry" in got  # imported inside a function


def test_ops_do_not_import_the_layers_above_them():
    bad = [f"{name}:{line} imports {target}"
           for name, path in modules().items() if imports_module(name, "fastsnn.ops")
           for target, _, line in imports(path, name)
           if any(imports_module(target, above) for above in ABOVE_OPS)]
    assert not bad, "\n".join(bad)


def test_no_import_cycle_between_functional_and_ops():
    mods = modules()
    graph = {name: {t for t, _, _ in imports(path, name, mods) if t in mods}
             for name, path in mods.items()}
    # every module fastsnn.ops reaches, following imports transitively
    seen, todo = set(), [n for n in mods if imports_module(n, "fastsnn.ops")]
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo += graph[n]
    assert "fastsnn.functional" not in seen


def test_validate_is_not_imported_as_V():
    bad = [f"{name}:{line}" for name, path in modules().items()
           for target, alias, line in imports(path, name)
           if target.endswith("_validate") and alias == "V"]
    assert not bad, "V is the recurrent weight; import _validate under another name: " + str(bad)


@pytest.mark.parametrize("op", OP_FOLDERS)
def test_each_op_has_its_folder_and_a_registry_row(op):
    folder = PKG / "ops" / op
    missing = [f for f in OP_FILES if not (folder / f).is_file()]
    assert not missing, f"fastsnn/ops/{op} lacks {missing}"
    assert op in registry.OPS
    for part, f in zip(("ref", "function", "triton", "fake"), OP_FILES):
        assert registry.module_name(op, part) == f"fastsnn.ops.{op}.{f[:-3]}"


def test_registry_names_existing_modules():
    mods = modules()
    for op in registry.OPS:
        for part in registry.PARTS:
            name = registry.module_name(op, part)
            assert name is None or name in mods, (op, part, name)
