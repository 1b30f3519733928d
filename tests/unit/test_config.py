import pytest

from tradewind.config import ConfigError, load_settings


def test_comma_separated_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEWIND_EXCHANGES", "sim, bitfinex")
    assert load_settings().exchanges == ["sim", "bitfinex"]


def test_an_unknown_setting_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEWIND_SIM_SPEEED", "60")
    with pytest.raises(ConfigError, match="TRADEWIND_SIM_SPEEED"):
        load_settings()


def test_a_bad_value_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEWIND_PORT", "eighty")
    with pytest.raises(ConfigError, match="TRADEWIND_PORT"):
        load_settings()


def test_toml_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "tw.toml"
    cfg.write_text('sim_speed = 60\nsim_symbols = ["BTC/USD"]\n')
    monkeypatch.setenv("TRADEWIND_CONFIG", str(cfg))
    s = load_settings()
    assert s.sim_speed == 60 and s.sim_symbols == ["BTC/USD"]


def test_distributed_mode_needs_a_secret_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tradewind.secrets import load_secret_box

    with pytest.raises(ConfigError, match="TRADEWIND_SECRET_KEY"):
        load_secret_box(load_settings(mode="distributed", data_dir=tmp_path))
    box = load_secret_box(load_settings(data_dir=tmp_path))
    assert box.decrypt(box.encrypt("s3cret")) == "s3cret"
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0
