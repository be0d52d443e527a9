"""The library's structure: which modules may import which."""
def test_no_module_below_the_book_imports_a_chapter():
    """Only the top-level operations (`book`, `bench`, the CLI) import chapters/; no chapter imports another."""
    import ast
    import pathlib
    root = pathlib.Path(__file__).resolve().parents[1] / "ingur_lib"
    offenders = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).as_posix()
        if rel in ("book.py", "bench.py", "__main__.py", "chapters/__init__.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and (
                    node.module.startswith("chapters") or node.module.startswith("ingur_lib.chapters")
                    or (rel.startswith("chapters/") and node.level == 1 and node.module)):
                offenders.append(f"{rel}: from {'.' * node.level}{node.module}")
    assert not offenders, f"imports of chapters/ from below the book: {offenders}"


def _imports(root):
    """module -> the ingur_lib modules it imports (at any depth in the file, lazy imports included)."""
    import ast
    graph = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name, pkg = ".".join(parts), parts if path.name == "__init__.py" else parts[:-1]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = pkg[: len(pkg) - node.level + 1] if node.level else []
                mod = ".".join(base + (node.module.split(".") if node.module else [])) if node.level else node.module
                if mod and mod.startswith("ingur_lib"):
                    deps.add(mod)
                    deps.update(f"{mod}.{a.name}" for a in node.names)
        graph[name] = deps
    return {k: {d for d in v if d in graph and d != k} for k, v in graph.items()}


def test_no_import_cycles_between_modules():
    """Package __init__ files aside (they gather their children), no module imports one that imports it back."""
    import pathlib
    graph = _imports(pathlib.Path(__file__).resolve().parents[1] / "ingur_lib")
    leaves = {k: v for k, v in graph.items() if not any(o.startswith(k + ".") for o in graph)}
    cycles = set()

    def visit(node, path):
        for nxt in leaves.get(node, ()):
            if nxt in path:
                cycles.add(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt in leaves:
                visit(nxt, path + [nxt])
    for start in leaves:
        visit(start, [start])
    assert not cycles, f"import cycles: {sorted(cycles)[:5]}"
