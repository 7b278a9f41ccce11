"""Subjects and preheaders as templates per digest: what arrives (the raw Subject line
an SMTP server received), one line, RFC 2047 for Chinese; every mistake a located
configuration error when the settings load, never a failure during a send."""

from __future__ import annotations

import json
import re
from email.header import decode_header, make_header
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.digest.subjects import check_line
from pipeline.errors import ConfigError
from pipeline.settings import load_settings
from tests.conftest import invoke

# The fixture replacing conftest's, so mail_project sends to an inbox keeping raw bytes.
from tests.rawmail import inbox as inbox
from tests.rawmail import split, unfolded


def set_digest(root: Path, digest: str, **lines: str) -> None:
    """Add keys (JSON-quoted, so any text is one YAML scalar) to a digest's settings."""
    config = root / "config" / "pipeline.yaml"
    text = config.read_text(encoding="utf-8")
    added = "".join(
        f"    {key}: {json.dumps(value, ensure_ascii=False)}\n" for key, value in lines.items()
    )
    text = text.replace(f"  {digest}:\n", f"  {digest}:\n{added}", 1)
    config.write_text(text, encoding="utf-8")


def subject(raw: bytes) -> str:
    return str(make_header(decode_header(unfolded(split(raw).fields["subject"]))))


def listed_titles(raw: bytes) -> list[str]:
    return re.findall(r"^\d+\. (.+)$", split(raw).parts["text/plain"], re.M)


def test_the_subject_names_the_lead_article_and_the_others(mail_project, inbox) -> None:
    handler, _ = inbox
    set_digest(
        mail_project,
        "weekly-en",
        subject="{{ lead.title }} and {{ others }} more",
        preheader="{{ count }} stories from {{ site }}, {{ date }}",
    )
    assert invoke(mail_project, "digest", "send", "weekly-en").exit_code == 0
    raw = handler.raw[0]
    titles = listed_titles(raw)
    assert subject(raw) == f"{titles[0]} and {len(titles) - 1} more"
    assert b"=?" not in b"".join(split(raw).fields["subject"])  # ASCII goes out as written
    html = split(raw).parts["text/html"]
    assert re.search(rf"{len(titles)} stories from Mountain News, \d+ \w+ 20\d\d", html)


def test_a_chinese_subject_template_goes_out_rfc_2047_encoded(mail_project, inbox) -> None:
    handler, _ = inbox
    set_digest(mail_project, "monthly-zh", subject="{{ title }}：{{ lead.title }}等{{ count }}篇")
    assert invoke(mail_project, "digest", "send", "monthly-zh").exit_code == 0
    (raw,) = handler.raw  # the one Chinese subscriber
    lines = split(raw).fields["subject"]
    assert all(line.isascii() for line in lines) and b"=?utf-8?" in lines[0]
    titles = listed_titles(raw)
    assert subject(raw) == f"山地新闻月报：{titles[0]}等{len(titles)}篇"


def test_a_subject_is_one_line_whatever_the_template_writes(mail_project, inbox) -> None:
    handler, _ = inbox
    set_digest(mail_project, "weekly-en", subject="{{ title }}\n\n  —\t{{ lead.title }}\n")
    assert invoke(mail_project, "digest", "send", "weekly-en").exit_code == 0
    raw = handler.raw[0]
    shown = subject(raw)
    assert shown == f"This week at Mountain News — {listed_titles(raw)[0]}"
    # Folded (if at all) at whitespace only: each continuation line starts with a space.
    assert all(line[:1] == b" " for line in split(raw).fields["subject"][1:])


def test_without_a_template_the_subject_stays_the_title(mail_project, inbox) -> None:
    handler, _ = inbox
    assert invoke(mail_project, "digest", "send", "weekly-en").exit_code == 0
    assert all(subject(raw) == "This week at Mountain News" for raw in handler.raw)


def test_a_test_send_marks_the_templated_subject(mail_project, inbox) -> None:
    handler, _ = inbox
    set_digest(mail_project, "weekly-en", subject="{{ lead.title }} (+{{ others }})")
    assert (
        invoke(mail_project, "digest", "send", "weekly-en", "--to", "a@example.org").exit_code == 0
    )
    (raw,) = handler.raw
    titles = listed_titles(raw)
    assert subject(raw) == f"[Test] {titles[0]} (+{len(titles) - 1})"


@pytest.mark.parametrize(
    ("template", "said"),
    [
        ("{{ lead.title ", "template syntax error"),
        ("{{ leed.title }}", "did you mean `lead`"),
        ("{{ lead.titel }}", "lead has lead.title"),
        ("{{ lead.__class__ }}", "unsafe"),
        ("{{ 'x' * 100000000 }}", "not for a subject line"),
        ("{{ title | nosuchfilter }}", "template syntax error"),
        ("{% for x in range(10**12) %}{% endfor %}", "not for a subject line"),
    ],
)
def test_a_template_mistake_is_located_at_its_line(project, template, said) -> None:
    root = project(with_examples=False)
    set_digest(root, "weekly-en", subject=template)
    result = invoke(root, "check")
    assert result.exit_code == 2, result.output
    lines = (root / "config" / "pipeline.yaml").read_text(encoding="utf-8").splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.startswith("    subject:"))
    assert f"pipeline.yaml:{line}:" in result.output
    assert "digests.weekly-en.subject" in result.output and said in result.output


def test_a_preheader_mistake_is_located_too(project) -> None:
    root = project(with_examples=False)
    set_digest(root, "monthly-zh", preheader="{{ lead.summary }} {{ nope }}")
    result = invoke(root, "check")
    assert result.exit_code == 2
    assert "digests.monthly-zh.preheader" in result.output and "`nope`" in result.output


def test_the_sample_renders_every_variable() -> None:
    text = check_line(
        "{{ lead.title }}|{{ lead.url }}|{{ lead.summary }}|{{ lead.authors }}|"
        "{{ lead.section }}|{{ others }}|{{ count }}|{{ date }}|{{ title }}|{{ site }}",
        title="Weekly",
        language="en",
    )
    assert all(text.split("|")) and "Weekly" in text


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    template=st.one_of(
        st.text(max_size=120),
        st.lists(
            st.sampled_from(
                [
                    "{{",
                    "}}",
                    "{%",
                    "%}",
                    " lead",
                    ".title",
                    " others",
                    "|upper",
                    " if ",
                    " endif",
                    " for x in ",
                    "range(3)",
                    "é",
                    "\n",
                    "'",
                    "[0]",
                    " * ",
                    "9",
                ]
            ),
            max_size=12,
        ).map("".join),
    )
)
def test_any_subject_template_is_accepted_or_a_located_error(tmp_path_factory, template) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "config").mkdir()
    config = (
        "site: {name: N, url: 'https://example.org'}\nsources: []\n"
        "email:\n  from: n@example.org\n  unsubscribe: {url: 'https://example.org/u'}\n"
        "digests:\n  weekly:\n    title: Weekly\n    language: en\n"
        f"    subject: {json.dumps(template, ensure_ascii=False)}\n"
        f"    preheader: {json.dumps(template, ensure_ascii=False)}\n"
    )
    (root / "config" / "pipeline.yaml").write_text(config, encoding="utf-8")
    try:
        loaded = load_settings(root / "config" / "pipeline.yaml")
    except ConfigError as error:
        for problem in error.problems:  # at the subject's line (10) or the preheader's
            assert problem.line in (10, 11), problem
        return
    assert "\n" not in check_line(loaded.digests["weekly"].subject or "", title="W", language="en")
