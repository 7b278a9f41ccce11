"""Plug-ins by entry point: a package installed beside the pipeline adds a channel, a
source and a feed format, and the real CLI uses them with no change under pipeline/.

The package is tests/plugin_package (newsroom_extras): ntfy, a JSON-lines source and a
plain-text listing. It is really installed (pip --target) and put on PYTHONPATH of the
`pipeline` subprocess, as a user would install it beside the pipeline.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field
from pytest_httpserver import HTTPServer

from pipeline.errors import ConfigError
from pipeline.plugins import (
    BUILT_IN,
    CHANNEL_OPTIONS,
    CHANNELS,
    FEED_FORMATS,
    SOURCE_OPTIONS,
    SOURCES,
    TRANSPORTS,
    Entry,
    PluginError,
    Plugins,
)
from pipeline.settings import load_settings, settings_model
from pipeline.settings.channels import ChannelOptions

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "tests" / "plugin_package"
PIPELINE = [sys.executable, "-m", "pipeline"]
PIP_INSTALL = [sys.executable, "-m", "pip", "install", "-q", "--no-deps"]


@pytest.fixture(scope="module")
def extras(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/plugin_package installed into a folder of its own, as pip installs it."""
    target = tmp_path_factory.mktemp("site-packages")
    source = tmp_path_factory.mktemp("source") / "plugin_package"  # the build writes beside it
    shutil.copytree(PACKAGE, source)
    subprocess.run(
        [*PIP_INSTALL, "--target", str(target), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


CONFIG = """\
site:
  name: Lakeside News
  url: https://news.example.org
state: {state}
sources:
  - name: wire
    type: jsonl
    path: data/wire.jsonl
feeds:
  formats: [rss, txt]
channels:
  alerts:
    type: ntfy
    server: {server}
    topic: lakeside
    token: ${{NTFY_TOKEN}}
    max_age_hours: 1000000
"""

WIRE = [
    {
        "id": "bridge",
        "title": "Bridge reopens after repairs",
        "url": "https://news.example.org/wire/bridge/",
        "published": "2026-11-02T08:00:00Z",
        "summary": "Traffic flows again across the lake.",
    },
    {
        "id": "ferry",
        "title": "Ferry timetable changes",
        "url": "https://news.example.org/wire/ferry/",
        "published": "2026-11-01T08:00:00Z",
    },
]


def make_project(root: Path, state_url: str, server: str) -> Path:
    if state_url.startswith("sqlite:///"):
        state_url = f"sqlite:///{root / 'var' / 'state.db'}"
    config = root / "config" / "pipeline.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(CONFIG.format(state=state_url, server=server), encoding="utf-8")
    (root / "schedules.yaml").write_text("schedules: {}\n", encoding="utf-8")
    data = root / "data" / "wire.jsonl"
    data.parent.mkdir()
    data.write_text("".join(json.dumps(entry) + "\n" for entry in WIRE), encoding="utf-8")
    return config


def pipeline(
    extras: Path, root: Path, *args: str, pythonpath: tuple[Path, ...] = ()
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    env["PYTHONPATH"] = os.pathsep.join(str(path) for path in (extras, *pythonpath))
    env["NTFY_TOKEN"] = "tk_secret"
    return subprocess.run(
        [*PIPELINE, "--config", str(root / "config" / "pipeline.yaml"), *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_a_plugin_package_adds_a_channel_a_source_and_a_feed_format(
    extras: Path, tmp_path: Path, state_url: str, httpserver: HTTPServer
) -> None:
    root = tmp_path / "project"
    make_project(root, state_url, httpserver.url_for("/").rstrip("/"))
    for path in ("bridge", "ferry"):
        httpserver.expect_oneshot_request(
            "/",
            method="POST",
            headers={"Authorization": "Bearer tk_secret"},
            json={
                "topic": "lakeside",
                "title": WIRE[0 if path == "bridge" else 1]["title"],
                "message": _generic_text(WIRE[0 if path == "bridge" else 1]),
                "click": f"https://news.example.org/wire/{path}/",
            },
        ).respond_with_json({"id": f"ntfy-{path}"})

    for command in ("check", "ingest", "feeds", "post"):
        done = pipeline(extras, root, command)
        assert done.returncode == 0, f"{command}: {done.stdout}\n{done.stderr}"

    httpserver.check_assertions()  # both articles, each once, as the server saw them
    assert len(httpserver.log) == 2
    listing = (root / "public" / "feeds" / "articles.txt").read_text(encoding="utf-8")
    assert listing == (
        "Lakeside News\n\n"
        "2026-11-02  Bridge reopens after repairs  <https://news.example.org/wire/bridge/>\n"
        "2026-11-01  Ferry timetable changes  <https://news.example.org/wire/ferry/>\n"
    )
    assert b"Bridge reopens after repairs" in (root / "public/feeds/rss.xml").read_bytes()
    assert not (root / "public" / "feeds" / "atom.xml").exists()  # not configured

    again = pipeline(extras, root, "post")  # posted once: nothing more reaches the server
    assert again.returncode == 0, again.stderr
    assert len(httpserver.log) == 2


def _generic_text(entry: dict[str, str]) -> str:
    """What templates/channels/generic.txt.j2 writes: ntfy ships no template."""
    summary = f"\n\n{entry['summary']}" if entry.get("summary") else ""
    return f"{entry['title']}{summary}\n\n{entry['url']}"


@pytest.mark.parametrize(
    ("written", "where", "message"),
    [
        ("type: ntfy", "type: nfty", "`channels.alerts.type`: unknown type 'nfty' — did you mean"),
        ("type: jsonl", "type: jsonlines", "`sources[0].type`: unknown type 'jsonlines'"),
        ("formats: [rss, txt]", "formats: [rss, text]", "`feeds.formats[1]`: Input should be"),
        ("topic: lakeside", "topik: lakeside", "unknown key `topik` in `channels.alerts`"),
    ],
)
def test_a_plugin_type_or_option_mistake_is_a_located_error(
    extras: Path, tmp_path: Path, written: str, where: str, message: str
) -> None:
    root = tmp_path / "project"
    config = make_project(root, "sqlite:///", "http://127.0.0.1:9")
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace(written, where), encoding="utf-8")
    line = next(n for n, row in enumerate(text.splitlines(), 1) if written in row)
    done = pipeline(extras, root, "check")
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert f"pipeline.yaml:{line}:" in output and message in output, output
    if "did you mean" in message:
        assert "did you mean `ntfy`?" in output


@pytest.mark.parametrize(
    ("entry_point", "problem"),
    [
        (
            "mastodon = broken_extras:Toot",
            "entry point `mastodon = broken_extras:Toot` (group pipeline.channels) of "
            "distribution broken-extras: the name 'mastodon' is taken: it clashes with the "
            "built-in entry point",
        ),
        (
            "toot = broken_extras:Toot",
            "entry point `toot = broken_extras:Toot` (group pipeline.channels) of distribution "
            "broken-extras: cannot be loaded: ModuleNotFoundError",
        ),
    ],
)
def test_a_broken_plugin_stops_check_naming_its_distribution_and_entry_point(
    extras: Path, tmp_path: Path, entry_point: str, problem: str
) -> None:
    root = tmp_path / "project"
    make_project(root, "sqlite:///", "http://127.0.0.1:9")
    installed = tmp_path / "site-packages"  # what pip leaves of a distribution: its metadata
    info = installed / "broken_extras-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-extras\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[pipeline.channels]\n{entry_point}\n")
    done = pipeline(extras, root, "check", pythonpath=(installed,))
    assert done.returncode == 2, done.stdout + done.stderr  # a configuration problem
    assert problem in done.stderr, done.stderr
    assert "nothing was changed" in done.stderr


# -- the registry itself, with entry points written here -----------------------------------


def fake(entries: list[Entry]) -> Plugins:
    return Plugins(find=lambda: entries)


def test_a_plugin_taking_a_built_in_name_is_refused_naming_both() -> None:
    plugins = fake(
        [
            Entry(CHANNELS, "mastodon", "pipeline.channels.mastodon:MastodonChannel", BUILT_IN),
            Entry(CHANNELS, "mastodon", "toots.channel:Toot", "toots"),
        ]
    )
    with pytest.raises(PluginError) as caught:
        plugins.entries(CHANNELS)
    (problem,) = caught.value.problems
    assert problem.file == (
        "entry point `mastodon = toots.channel:Toot` (group pipeline.channels) "
        "of distribution toots"
    )
    assert "clashes with the built-in entry point `mastodon = pipeline.channels" in problem.message
    assert problem.hint == "rename the entry point in toots, or uninstall it"


def test_a_plugin_that_cannot_be_imported_names_its_distribution_and_entry_point() -> None:
    plugins = fake([Entry(FEED_FORMATS, "opml", "no_such_module_here:OPML", "outlines")])
    with pytest.raises(PluginError) as caught:
        plugins.load(FEED_FORMATS, "opml")
    (problem,) = caught.value.problems
    assert problem.file.startswith("entry point `opml = no_such_module_here:OPML`")
    assert problem.file.endswith("of distribution outlines")
    assert problem.message.startswith("cannot be loaded: ModuleNotFoundError")


class MisnamedOptions(ChannelOptions):
    type: Literal["other"] = Field(description="A type that is not its entry point's name.")


class Misnamed:
    options_model = MisnamedOptions


def test_a_channel_whose_options_do_not_name_its_type_is_refused() -> None:
    plugins = fake(
        [
            *Plugins().entries(SOURCES).values(),
            Entry(CHANNELS, "ntfy", f"{__name__}:Misnamed", "extras"),
            *Plugins().entries(FEED_FORMATS).values(),
        ]
    )
    with pytest.raises(PluginError, match=r"`options_model`, a subclass of ChannelOptions with "):
        settings_model(plugins)


class NtfyOptions(ChannelOptions):
    type: Literal["ntfy"] = Field(description="A topic on an ntfy server.")
    topic: str = Field(description="The topic to publish to.")


class Ntfy:
    options_model = NtfyOptions


class OtherNtfy:
    options_model = MisnamedOptions


def built_ins() -> list[Entry]:
    every = Plugins()
    groups = (SOURCES, SOURCE_OPTIONS, CHANNELS, CHANNEL_OPTIONS, FEED_FORMATS, TRANSPORTS)
    return [entry for group in groups for entry in every.entries(group).values()]


def test_declared_options_validate_the_settings_without_importing_the_adapter() -> None:
    """Its options declared in pipeline.channel_options, a channel whose module is not
    even importable still validates; it fails only once it is used."""
    plugins = fake(
        [
            *built_ins(),
            Entry(CHANNELS, "ntfy", "no_such_module_here:Ntfy", "extras"),
            Entry(CHANNEL_OPTIONS, "ntfy", f"{__name__}:NtfyOptions", "extras"),
        ]
    )
    model = settings_model(plugins)
    settings = model.model_validate(
        {
            "site": {"name": "N", "url": "https://n.example.org"},
            "sources": [{"name": "news", "type": "markdown", "path": "articles"}],
            "channels": {"alerts": {"type": "ntfy", "topic": "lakeside"}},
        }
    )
    assert isinstance(settings.channels["alerts"], NtfyOptions)
    assert not any(name.startswith("pipeline.channels.") for name, _ in plugins._loaded)
    with pytest.raises(PluginError, match="cannot be loaded: ModuleNotFoundError"):
        plugins.load(CHANNELS, "ntfy")


def test_the_built_ins_are_validated_without_importing_any_adapter() -> None:
    plugins = Plugins()
    settings_model(plugins)
    assert {group for group, _ in plugins._loaded} == {SOURCE_OPTIONS, CHANNEL_OPTIONS}


def test_an_adapter_whose_options_model_is_not_the_declared_one_is_refused() -> None:
    plugins = fake(
        [
            Entry(CHANNELS, "ntfy", f"{__name__}:OtherNtfy", "extras"),
            Entry(CHANNEL_OPTIONS, "ntfy", f"{__name__}:NtfyOptions", "extras"),
        ]
    )
    assert plugins.options_model(CHANNELS, "ntfy") is NtfyOptions
    with pytest.raises(PluginError) as caught:
        plugins.load(CHANNELS, "ntfy")
    (problem,) = caught.value.problems
    assert problem.file.startswith(f"entry point `ntfy = {__name__}:OtherNtfy`")
    assert f"its `options_model` is not {__name__}:NtfyOptions" in problem.message


def test_another_distribution_cannot_declare_a_plugins_options() -> None:
    plugins = fake(
        [
            Entry(CHANNELS, "ntfy", f"{__name__}:Ntfy", "extras"),
            Entry(CHANNEL_OPTIONS, "ntfy", f"{__name__}:NtfyOptions", "squatter"),
        ]
    )
    with pytest.raises(PluginError, match="another distribution's"):
        plugins.options_model(CHANNELS, "ntfy")


def test_without_any_plugin_installed_the_error_says_to_install_the_pipeline() -> None:
    with pytest.raises(PluginError, match=r"group pipeline.sources: none are installed"):
        settings_model(fake([]))


def test_an_unknown_feed_format_is_a_located_error_with_the_nearest_name(tmp_path: Path) -> None:
    config = tmp_path / "config" / "pipeline.yaml"
    config.parent.mkdir()
    config.write_text(
        "site:\n  name: N\n  url: https://n.example.org\nsources: []\n"
        "feeds:\n  formats: [rss, atm]\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    (problem,) = (str(p) for p in caught.value.problems)
    assert problem.startswith(f"{config}:6:")
    assert "`feeds.formats[1]`" in problem and "did you mean `atom`?" in problem


def test_a_channel_type_without_its_own_template_gets_the_generic_one(tmp_path: Path) -> None:
    from pipeline.settings import default_template

    assert default_template("mastodon", tmp_path).name == "mastodon.txt.j2"
    assert default_template("ntfy", tmp_path).name == "generic.txt.j2"
    own = tmp_path / "templates" / "channels" / "ntfy.txt.j2"
    own.parent.mkdir(parents=True)
    own.write_text("{{ title }}\n", encoding="utf-8")
    assert default_template("ntfy", tmp_path).name == "ntfy.txt.j2"  # the project's wins


def test_serve_hands_out_a_plugin_feed_format_with_its_media_type(
    extras: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, live_app
) -> None:
    import requests
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from pipeline.assembly import Assembly
    from pipeline.store import Store
    from pipeline.web.feedfiles import FeedFiles

    monkeypatch.syspath_prepend(str(extras))  # installed beside the pipeline, as pip would
    monkeypatch.setenv("NTFY_TOKEN", "tk_secret")
    plugins = Plugins()
    config = make_project(tmp_path / "project", "sqlite:///", "http://127.0.0.1:9")
    settings = load_settings(config, plugins)
    store = Store(settings.state, settings.site.url)
    try:
        parts = Assembly(settings, store, plugins=plugins)
        parts.write_feeds()
        folder = settings.feeds.output
        listing_file = next(folder.rglob("articles.txt"))
        # as pipeline serve mounts it (pipeline.web.app.create_app)
        served = FeedFiles(folder, parts.feed_content_types())
        base = live_app(Starlette(routes=[Mount("/feeds", app=served)])) + "/feeds/"
        listing = requests.get(base + listing_file.relative_to(folder).as_posix(), timeout=10)
        rss_file = listing_file.with_name("rss.xml")
        rss = requests.get(base + rss_file.relative_to(folder).as_posix(), timeout=10)
    finally:
        store.close()
    assert listing.status_code == 200
    assert listing.headers["content-type"] == "text/plain; charset=utf-8"
    assert listing.content == listing_file.read_bytes()
    assert rss.status_code == 200
    assert rss.headers["content-type"] == "application/rss+xml; charset=utf-8"
