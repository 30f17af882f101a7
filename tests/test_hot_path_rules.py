"""DESIGN.md: the hot path (emu/core/, devices/chips/) holds only jitted
functions over arrays: no classes, no module-level mutable state, imports
of numpy, numba and other hot modules only.

One file is the exception by design: emu/core/guest.py defines the numba
type of the Guest bundle (a class, its lowering in llvmlite), so that jitted
code receives the state arrays as one pointer instead of ~64 words a call.
A second one, emu/core/jit_link.py, changes how numba links and optimises
the hot path's code libraries (compile time only): it listens to numba's
compile events (a class) and counts their nesting (module state)."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
HOT = [ROOT / "emu" / "core", ROOT / "devices" / "chips"]
ALLOWED_IMPORTS = ("numpy", "numba", "llvmlite", "emu.core", "devices.chips", "collections", "hashlib", "os",
                   "pathlib")


TYPE_GLUE = ROOT / "emu" / "core" / "guest.py"
COMPILE_GLUE = ROOT / "emu" / "core" / "jit_link.py"


def hot_files():
    for d in HOT:
        yield from (f for f in sorted(d.rglob("*.py")) if f not in (TYPE_GLUE, COMPILE_GLUE))


def test_the_compile_glue_holds_only_the_compile_listener():
    tree = ast.parse(COMPILE_GLUE.read_text())
    assert sorted(n.name for n in tree.body if isinstance(n, ast.ClassDef)) == ["_CompileDepth"]
    jitted = [n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)
              and any("jit" in ast.unparse(d) for d in n.decorator_list)]
    assert jitted == [], "jit_link.py is compile machinery, not guest code"


def test_the_type_glue_only_defines_the_guest_type():
    tree = ast.parse(TYPE_GLUE.read_text())
    classes = sorted(n.name for n in tree.body if isinstance(n, ast.ClassDef))
    assert classes == ["Guest", "GuestType", "_GuestAttributes", "_GuestModel"]


def test_hot_path_imports_only_hot_modules():
    bad = []
    for f in hot_files():
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for n in names:
                if not n.startswith(ALLOWED_IMPORTS):
                    bad.append(f"{f.relative_to(ROOT)} imports {n}")
    assert not bad, "\n".join(bad)


def test_hot_path_has_no_classes_and_no_mutable_module_state():
    bad = []
    for f in hot_files():
        tree = ast.parse(f.read_text())
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                bad.append(f"{f.relative_to(ROOT)}: class {node.name}")
            if isinstance(node, ast.Assign) and isinstance(node.value, (ast.List, ast.Dict, ast.Set,
                                                                         ast.ListComp, ast.DictComp)):
                bad.append(f"{f.relative_to(ROOT)}:{node.lineno}: mutable module-level value")
    assert not bad, "\n".join(bad)


def test_every_function_in_core_isa_is_jitted():
    bad = []
    for f in (ROOT / "emu" / "core" / "isa").glob("*.py"):
        for node in ast.parse(f.read_text()).body:
            if isinstance(node, ast.FunctionDef):
                decos = [ast.unparse(d) for d in node.decorator_list]
                if "jit" not in decos:
                    bad.append(f"{f.name}: {node.name} is not @jit")
    assert not bad, "\n".join(bad)
