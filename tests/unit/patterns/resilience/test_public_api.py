import ast
import inspect
import types
from pathlib import Path

import bookvault.patterns.resilience as resilience
from bookvault.patterns.resilience import (
    BulkheadFull,
    CallNotPermitted,
    CallRejected,
    DeadlineExceeded,
    ResilienceError,
)


def test_all_lists_every_public_name_and_nothing_else() -> None:
    public = {
        name
        for name, value in vars(resilience).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(resilience.__all__) == public
    assert sorted(resilience.__all__) == sorted(set(resilience.__all__))


def test_the_exception_tree_is_the_documented_one() -> None:
    assert issubclass(ResilienceError, Exception)
    assert issubclass(CallRejected, ResilienceError)
    assert issubclass(CallNotPermitted, CallRejected)
    assert issubclass(BulkheadFull, CallRejected)
    assert issubclass(DeadlineExceeded, ResilienceError)
    assert issubclass(DeadlineExceeded, TimeoutError)
    doc = inspect.getdoc(resilience) or ""
    for name in ("ResilienceError", "CallRejected", "CallNotPermitted", "BulkheadFull", "DeadlineExceeded"):
        assert name in doc


def test_the_package_imports_only_the_standard_library_and_the_clock() -> None:
    package = Path(resilience.__file__).parent
    for module in package.glob("*.py"):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                # Relative imports stay inside patterns: siblings, or the shared clock.
                assert node.level == 1 or node.module == "clock", f"{module.name} imports ..{node.module}"
            elif isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                for name in names:
                    assert name is not None
                    assert not name.startswith("bookvault"), f"{module.name} imports {name}"
