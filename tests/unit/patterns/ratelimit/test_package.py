import importlib
import pkgutil
import re

import pytest

import bookvault.patterns.ratelimit as ratelimit
from bookvault.patterns.ratelimit import GCRA, Algorithm, FixedWindow, SlidingLog, SlidingWindow, TokenBucket
from bookvault.patterns.ratelimit.redis_backend import lua_source

ALGORITHMS: list[Algorithm] = [
    FixedWindow(10, 1),
    SlidingWindow(10, 1),
    SlidingLog(10, 1),
    TokenBucket(10, 10),
    GCRA(10, 1),
]
MODULES = [m.name for m in pkgutil.iter_modules(ratelimit.__path__, "bookvault.patterns.ratelimit.")]


def test_all_is_complete_and_resolves() -> None:
    assert sorted(ratelimit.__all__) == sorted(set(ratelimit.__all__))
    for name in ratelimit.__all__:
        assert getattr(ratelimit, name) is not None
    public = {name for name in vars(ratelimit) if not name.startswith("_")}
    submodules = {m.rpartition(".")[2] for m in MODULES}
    assert public - submodules - {"annotations"} == set(ratelimit.__all__)


@pytest.mark.parametrize("module", MODULES)
def test_every_module_declares_its_public_names(module: str) -> None:
    loaded = importlib.import_module(module)
    assert isinstance(loaded.__all__, list)
    for name in loaded.__all__:
        assert hasattr(loaded, name), f"{module}.__all__ names {name}, which it does not define"


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: type(a).__name__)
def test_each_algorithm_ships_its_lua_script(algorithm: Algorithm) -> None:
    source = lua_source(algorithm.script)
    assert "redis.call('TIME')" in source, "decisions must use the server's clock"


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: type(a).__name__)
def test_scripts_touch_only_their_declared_key(algorithm: Algorithm) -> None:
    # Cluster safety: a script may only use keys passed in KEYS, all inside one hash tag.
    source = lua_source(algorithm.script)
    calls = re.findall(r"redis\.call\('([A-Z]+)'(?:, ([^,)]+))?", source)
    assert calls
    for command, first_argument in calls:
        if command != "TIME":
            assert first_argument == "KEYS[1]", f"{command} touches {first_argument}"
    assert "KEYS[2]" not in source
