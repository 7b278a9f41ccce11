"""config/pipeline.yaml: located errors, every problem at once, and documented settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from pipeline.errors import ConfigError
from pipeline.settings import Settings, load_settings

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
    assert any("`sources[0].path` is required" in p for p in found)
    assert any(p.startswith(f"{shown}:11:10:") and "feeds.items" in p for p in found)
    assert len(found) == 6


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

    from pipeline.yamlfile import _unwrap

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


def test_readme_documents_every_setting():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([a-z_]+(?:\.[a-z_]+)*)`", readme))
    missing = [key for key in _settings_paths(Settings) if key not in documented]
    assert not missing, f"README.md does not document: {', '.join(missing)}"


def test_every_setting_has_help_text():
    def undocumented(model: type[BaseModel]) -> list[str]:
        return [f"{model.__name__}.{n}" for n, f in model.model_fields.items() if not f.description]

    from pipeline import settings as module

    models = [
        obj
        for obj in vars(module).values()
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
