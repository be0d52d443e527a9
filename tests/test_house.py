"""The library's structure: which modules may import which."""
def test_no_module_below_the_book_imports_a_chapter():
    """Only the whole-book module (`ingur_lib.book`) and the CLI import chapters/; no chapter imports another."""
    import ast
    import pathlib
    root = pathlib.Path(__file__).resolve().parents[1] / "ingur_lib"
    offenders = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).as_posix()
        if rel in ("book.py", "__main__.py", "chapters/__init__.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and (
                    node.module.startswith("chapters") or node.module.startswith("ingur_lib.chapters")
                    or (rel.startswith("chapters/") and node.level == 1 and node.module)):
                offenders.append(f"{rel}: from {'.' * node.level}{node.module}")
    assert not offenders, f"imports of chapters/ from below the book: {offenders}"
