"""config/pipeline.yaml: located errors, every problem at once, and documented settings."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from pipeline.errors import ConfigError
from pipeline.plugins import Plugins
from pipeline.settings import load_settings, settings_model

REPO = Path(__file__).resolve().parent.parent


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config" / "pipeline.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    return [str(p) for p in caught.value.problems]


MINIMAL = """\
site:
  name: News
  url: https://news.example.org
sources:
  - name: news
    type: markdown
    path: content
"""


def test_example_config_loads_and_resolves_paths_against_the_project_folder():
    settings = load_settings(REPO / "config" / "pipeline.yaml")
    assert settings.site.timezone == "Asia/Kathmandu"
    assert settings.sources[0].path == REPO / "examples" / "site" / "news"
    assert settings.feeds.output == REPO / "public" / "feeds"
    assert settings.state == f"sqlite:///{REPO / 'var' / 'state.db'}"


def test_defaults_fill_what_is_not_written(tmp_path):
    settings = load_settings(write_config(tmp_path, MINIMAL))
    assert settings.site.language == "en"
    assert settings.feeds.formats == ("rss", "atom", "json")
    assert settings.feeds.items == 50


def test_site_addresses_are_uris_and_only_http(tmp_path):
    text = MINIMAL.replace(
        "url: https://news.example.org",
        "url: https://新闻.example.org/站点/\n  logo: https://新闻.example.org/标志.png",
    )
    settings = load_settings(write_config(tmp_path, text))
    assert settings.site.url == "https://xn--efvy88h.example.org/%E7%AB%99%E7%82%B9"
    assert settings.site.logo == "https://xn--efvy88h.example.org/%E6%A0%87%E5%BF%97.png"
    bad = MINIMAL.replace("https://news.example.org", "javascript:alert(1)")
    assert any("absolute http(s) URL" in p for p in problems(write_config(tmp_path, bad)))


def test_every_mistake_is_reported_at_once_with_line_column_and_fix(tmp_path):
    path = write_config(
        tmp_path,
        """\
site:
  name: News
  url: news.example.org
  langauge: en
  timezone: Asia/Kathmandoo
sources:
  - name: news
    type: markdown
    pth: content
feeds:
  items: lots
""",
    )
    found = problems(path)
    shown = str(path)
    assert any(p.startswith(f"{shown}:3:8:") and "absolute http(s) URL" in p for p in found)
    assert any(p.startswith(f"{shown}:4:3:") and "did you mean `language`?" in p for p in found)
    assert any(p.startswith(f"{shown}:5:13:") and "Asia/Kathmandu" in p for p in found)
    assert any(
        p.startswith(f"{shown}:9:5:") and "unknown key `pth`" in p and "`path`" in p for p in found
    )
    # `pth` is one mistake: its hint says to write `path`, so "path is required" is not added
    assert not any("`sources[0].path` is required" in p for p in found)
    assert any(p.startswith(f"{shown}:11:10:") and "feeds.items" in p for p in found)
    assert len(found) == 5


def test_yaml_syntax_error_names_line(tmp_path):
    path = write_config(tmp_path, MINIMAL + "feeds:\n  items: 5\n   formats: [rss]\n")
    (message,) = problems(path)
    assert message.startswith(f"{path}:10:")  # the over-indented `formats:` line
    assert "YAML syntax error" in message


def test_duplicate_keys_and_duplicate_source_names_are_refused(tmp_path):
    doubled = MINIMAL.replace("sources:", "site:\n  name: Again\nsources:")
    assert "duplicate" in problems(write_config(tmp_path, doubled))[0]
    twice = MINIMAL + "  - name: news\n    type: feed\n    url: https://up.example.org/rss\n"
    assert any("two sources are named 'news'" in p for p in problems(write_config(tmp_path, twice)))


def test_secrets_come_from_the_environment(tmp_path, monkeypatch):
    text = MINIMAL + "  - name: up\n    type: feed\n    url: https://${FEED_HOST}/rss\n"
    path = write_config(tmp_path, text)
    monkeypatch.delenv("FEED_HOST", raising=False)
    assert any(":10:10: environment variable FEED_HOST is not set" in p for p in problems(path))
    monkeypatch.setenv("FEED_HOST", "up.example.org")
    assert load_settings(path).sources[1].url == "https://up.example.org/rss"


def test_yaml_1_2_keeps_no_as_a_word(tmp_path):
    # YAML 1.1 (PyYAML) reads `no` as False; Norwegian is `no`.
    path = write_config(tmp_path, MINIMAL.replace("  url:", "  language: no\n  url:"))
    assert load_settings(path).site.language == "no"


def test_missing_file_is_a_config_error(tmp_path):
    (message,) = problems(tmp_path / "nope.yaml")
    assert "file not found" in message


def _settings_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every documented setting as a dotted key, e.g. feeds.extra.tag."""
    from typing import get_args

    from pipeline.validation import _unwrap

    paths = []
    for name, info in model.model_fields.items():
        dotted = f"{prefix}{info.alias or name}"
        paths.append(dotted)
        candidates = _unwrap([info.annotation])
        for cand in list(candidates):
            candidates.extend(_unwrap(list(get_args(cand))))
        for cand in candidates:
            if isinstance(cand, type) and issubclass(cand, BaseModel):
                paths.extend(_settings_paths(cand, f"{dotted}."))
    return sorted(set(paths))


def _models(model: type[BaseModel]) -> list[type[BaseModel]]:
    """``model`` and every model its fields may hold (each channel type's options…)."""
    from typing import get_args

    from pipeline.validation import _unwrap

    found = [model]
    for info in model.model_fields.values():
        candidates = _unwrap([info.annotation])
        for cand in list(candidates):
            candidates.extend(_unwrap(list(get_args(cand))))
        for cand in candidates:
            if isinstance(cand, type) and issubclass(cand, BaseModel):
                found.extend(_models(cand))
    return found


def test_readme_documents_every_setting():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([a-z_]+(?:\.[a-z_]+)*)`", readme))
    missing = [key for key in _settings_paths(settings_model(Plugins())) if key not in documented]
    assert not missing, f"README.md does not document: {', '.join(missing)}"


def test_every_setting_has_help_text():
    def undocumented(model: type[BaseModel]) -> list[str]:
        return [f"{model.__name__}.{n}" for n, f in model.model_fields.items() if not f.description]

    from pipeline import settings as module

    adapters = [
        vars(sys.modules[model.__module__])
        for model in _models(settings_model(Plugins()))
        if model.__module__ != module.__name__
    ]
    models = [
        obj
        for found in (vars(module), *adapters)
        for obj in found.values()
        if isinstance(obj, type) and issubclass(obj, module.Strict) and obj is not module.Strict
    ]
    missing = [name for model in models for name in undocumented(model)]
    assert not missing, missing


CHANNELS = (
    MINIMAL
    + """\
channels:
  masto:
    type: mastodon
    instance: https://mastodon.example
    access_token: {token}
    languages: [zh-cn]
"""
)


def test_a_secret_written_into_the_file_is_refused(tmp_path):
    path = write_config(tmp_path, CHANNELS.format(token="abc123literal"))
    (message,) = problems(path)
    assert message.startswith(f"{path}:12:19:")
    assert "`channels.masto.access_token` is a secret written into the file" in message
    assert "${ACCESS_TOKEN}" in message


def test_an_optional_secret_written_into_the_file_is_refused_too(tmp_path):
    text = MINIMAL + (
        "email:\n  from: News <news@news.example.org>\n  delivery: smtp\n"
        "  smtp:\n    host: smtp.example.org\n    password: hunter2\n"
        "  unsubscribe:\n    url: https://news.example.org/unsubscribe\n"
    )
    (message,) = problems(write_config(tmp_path, text))
    assert ":13:15:" in message and "`email.smtp.password` is a secret" in message


def test_secrets_never_show_in_a_printed_settings_object(tmp_path, monkeypatch):
    monkeypatch.setenv("MASTO_TOKEN", "abc123")
    settings = load_settings(write_config(tmp_path, CHANNELS.format(token="${MASTO_TOKEN}")))
    shown = repr(settings.channels["masto"])
    assert "abc123" not in shown and "access_token='***'" in shown


def test_a_secret_from_the_environment_is_accepted(tmp_path, monkeypatch):
    monkeypatch.setenv("MASTO_TOKEN", "abc123")
    settings = load_settings(write_config(tmp_path, CHANNELS.format(token="${MASTO_TOKEN}")))
    masto = settings.channels["masto"]
    assert masto.access_token == "abc123" and masto.languages == ("zh-CN",)
    assert masto.template == tmp_path / "templates" / "channels" / "mastodon.txt.j2"


def test_channel_type_and_key_mistakes_are_located(tmp_path, monkeypatch):
    monkeypatch.setenv("T", "x")
    text = CHANNELS.format(token="${T}").replace("type: mastodon", "type: mastadon")
    found = problems(write_config(tmp_path, text))
    assert found == [
        f"{tmp_path / 'config' / 'pipeline.yaml'}:10:11: `channels.masto.type`: unknown type "
        "'mastadon' — did you mean `mastodon`?"
    ]
    text = CHANNELS.format(token="${T}").replace("languages:", "langauges:")
    (message,) = problems(write_config(tmp_path, text))
    assert ":13:5: unknown key `langauges` in `channels.masto`" in message
    assert "did you mean `languages`?" in message


# -- hostile edits: every number has a ceiling, every mistake a place (the findings) -----

EMAIL = (
    "email:\n  from: news@example.org\n"
    "  unsubscribe:\n    url: https://news.example.org/unsubscribe\n"
)
WORDPRESS = "  - name: up\n    type: wordpress\n    url: https://wp.example.org\n"
FILE_CHANNEL = "channels:\n  archive:\n    type: file\n    path: var/posts.jsonl\n"
DIGEST = "digests:\n  weekly:\n    title: Weekly\n    language: en\n"


@pytest.mark.parametrize(
    ("added", "where", "maximum"),
    [
        ("    max_bytes: 200000000\n", "sources[0].max_bytes", "less than or equal to 100000000"),
        (WORDPRESS + "    max_pages: 100000\n", "sources[1].max_pages", "or equal to 1000"),
        (WORDPRESS + "    timeout: 1e9\n", "sources[1].timeout", "or equal to 600"),
        (WORDPRESS + "    timeout: .inf\n", "sources[1].timeout", "finite number"),
        (WORDPRESS + "    timeout: .nan\n", "sources[1].timeout", "finite number"),
        (FILE_CHANNEL + "    per_run: 1000000\n", "channels.archive.per_run", "equal to 1000"),
        (FILE_CHANNEL + "    max_age_hours: 1e12\n", "max_age_hours", "equal to 1000000"),
        (FILE_CHANNEL + "    spacing_seconds: 1e6\n", "spacing_seconds", "equal to 3600"),
        (FILE_CHANNEL + "    timeout: 100000\n", "channels.archive.timeout", "equal to 600"),
        (EMAIL + "  rate: 1e9\n", "email.rate", "less than or equal to 10000"),
        (EMAIL + "  smtp:\n    host: h\n    timeout: 1e9\n", "email.smtp.timeout", "to 600"),
        (EMAIL + "  smtp:\n    host: h\n    port: 70000\n", "email.smtp.port", "to 65535"),
        (EMAIL + DIGEST + "    min_items: 1000\n", "digests.weekly.min_items", "equal to 100"),
        ("web:\n  subscribe_per_hour: 1000000000\n", "subscribe_per_hour", "equal to 10000"),
        ("web:\n  listen: 127.0.0.1:99999\n", "web.listen", "a port from 1 to 65535"),
        ("feeds:\n  items: " + "9" * 5000 + "\n", "feeds.items", ""),
    ],
)
def test_every_number_has_a_maximum_named_in_a_located_error(tmp_path, added, where, maximum):
    path = write_config(tmp_path, MINIMAL + added)
    (message,) = problems(path)
    last_line = (MINIMAL + added).count("\n")
    assert message.startswith(f"{path}:{last_line}:"), message
    assert f"{where}`: " in message and maximum in message and len(message) < 300, message


def test_the_example_config_is_within_every_bound():
    settings = load_settings(REPO / "config" / "pipeline.yaml")
    assert settings.channels["archive"].max_age_hours == 100_000  # an archive demo


@pytest.mark.parametrize(
    ("zone", "message"),
    [
        ("A" * 300, "unknown time zone 'AAAAAAAA"),  # ZoneInfo raised OSError: name too long
        ("Asia", "unknown time zone 'Asia'"),  # a folder: IsADirectoryError
        ("../../../etc/passwd", "unknown time zone"),
        ('"Asia/Kathmandu/"', "unknown time zone"),
        ("Asia/Kathmandoo", "did you mean `Asia/Kathmandu`?"),
        ("asia/kathmandu", "did you mean `Asia/Kathmandu`?"),
    ],
)
def test_a_bogus_time_zone_is_a_located_error_never_os_error(tmp_path, zone, message):
    path = write_config(tmp_path, MINIMAL.replace("  url:", f"  timezone: {zone}\n  url:"))
    (found,) = problems(path)
    assert found.startswith(f"{path}:3:13: `site.timezone`:") and message in found, found
    assert len(found) < 300


def test_a_tab_after_a_colon_is_a_located_error(tmp_path):
    path = write_config(tmp_path, MINIMAL.replace("  name: News", '  name:\t"News"'))
    assert problems(path) == [
        f"{path}:2:8: a tab character here — YAML needs spaces: replace the tab"
    ]


def test_an_alias_bomb_in_the_config_is_refused_at_once(tmp_path):
    lines = ["x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"x{n}: &x{n} [{', '.join([f'*x{n - 1}'] * 9)}]" for n in range(1, 12)]
    path = write_config(tmp_path, MINIMAL + "\n".join(lines) + "\n")
    (message,) = problems(path)
    assert message.startswith(f"{path}:8:5: anchors and aliases (&name, *name) are not allowed")


def test_a_merge_key_is_refused_with_its_line(tmp_path):
    text = MINIMAL + "feeds:\n  <<: {items: 5}\n"
    (message,) = problems(write_config(tmp_path, text))
    assert ":9:3: merge keys (<<) are not allowed" in message


def test_a_file_too_large_or_not_a_file_is_a_config_error(tmp_path):
    path = write_config(tmp_path, MINIMAL + "# " + "x" * 1_000_000 + "\n")
    (message,) = problems(path)
    assert "larger than 1,000,000 bytes" in message
    (message,) = problems(tmp_path / "config")
    assert message.startswith(f"{tmp_path / 'config'}: cannot be read")
