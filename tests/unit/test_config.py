from pathlib import Path

import pytest

from bookvault.config import ConfigError, Settings, load_settings, with_database


def test_environment_overrides_defaults() -> None:
    settings = load_settings(
        {
            "BOOKVAULT_PROFILE": "optimized",
            "BOOKVAULT_GATEWAY_PORT": "9000",
            "BOOKVAULT_ACCESS_LOG": "on",
            "BOOKVAULT_REPLICA_URLS": "postgresql://a@h:1/x, postgresql://b@h:2/y",
        }
    )
    assert settings.profile == "optimized"
    assert settings.gateway_port == 9000
    assert settings.access_log is True
    assert settings.replica_urls == ("postgresql://a@h:1/x", "postgresql://b@h:2/y")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("BOOKVAULT_PROFILE", "fast", "must be one of baseline, optimized"),
        ("BOOKVAULT_GATEWAY_PORT", "eighty", "cannot read"),
        ("BOOKVAULT_ACCESS_LOG", "maybe", "must be on/off"),
        ("BOOKVAULT_TRUSTED_PROXIES", "not-a-net", "is not an IP network"),
        ("BOOKVAULT_JWT_ALGORITHM", "none", "must be one of HS256"),
    ],
)
def test_bad_values_name_the_setting(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings({name: value})
    assert name in str(caught.value) or "BOOKVAULT" in str(caught.value)


def test_toml_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    config = tmp_path / "bookvault.toml"
    config.write_text("[bookvault]\ncatalog_port = 9101\naccounts_port = 9103\n")
    settings = load_settings({"BOOKVAULT_CONFIG": str(config), "BOOKVAULT_ACCOUNTS_PORT": "9203"})
    assert settings.catalog_port == 9101
    assert settings.accounts_port == 9203


def test_unknown_toml_setting_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "bookvault.toml"
    config.write_text("catalog_prot = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'catalog_prot'"):
        load_settings({"BOOKVAULT_CONFIG": str(config)})


def test_settings_round_trip_through_child_environment() -> None:
    original = Settings(
        profile="optimized",
        database_url="postgresql://u:p@127.0.0.1:5/postgres",
        replica_urls=("postgresql://u:p@127.0.0.1:6/postgres",),
        trusted_proxies=("10.0.0.0/8",),
        access_log=True,
    )
    assert load_settings(original.as_environment()) == original


def test_service_database_urls_swap_only_the_database() -> None:
    settings = Settings(
        database_url="postgresql://u:p%40ss@127.0.0.1:5/postgres?sslmode=disable",
        replica_urls=("postgresql://u:p@127.0.0.1:6/postgres",),
    )
    assert settings.service_database_url("catalog") == (
        "postgresql://u:p%40ss@127.0.0.1:5/catalog?sslmode=disable"
    )
    assert settings.service_replica_urls("accounts") == ("postgresql://u:p@127.0.0.1:6/accounts",)
    assert with_database("postgresql://h/x", "y") == "postgresql://h/y"


def test_missing_database_says_what_to_do() -> None:
    with pytest.raises(ConfigError, match="bookvault up"):
        Settings().service_database_url("catalog")


def test_patterns_follow_the_profile_unless_switched() -> None:
    baseline = load_settings({"BOOKVAULT_CACHE": "on"})
    assert baseline.pattern_on("cache") is True
    assert baseline.pattern_on("compression") is False
    optimized = load_settings({"BOOKVAULT_PROFILE": "optimized", "BOOKVAULT_COMPRESSION": "off"})
    assert optimized.pattern_on("compression") is False
    assert optimized.pattern_on("rate_limit") is True
    with pytest.raises(ConfigError, match="unknown pattern"):
        optimized.pattern_on("telepathy")


def test_unbuilt_patterns_are_reported_as_such() -> None:
    states = load_settings({"BOOKVAULT_PROFILE": "optimized"}).pattern_states()
    assert set(states.values()) <= {"on", "off", "not built"}
    from bookvault.config import BUILT_PATTERNS

    for name, state in states.items():
        assert (state == "not built") == (name not in BUILT_PATTERNS)
