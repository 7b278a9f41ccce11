"""The words the digest says in each language, and dates, read-times and names for a reader.

Every string lives in ``STRINGS``, one dict per language, with ``{placeholders}`` filled in
by :func:`words`. A language tag picks its dict by its first part (``zh-CN``, ``zh-Hant``
and ``zh`` all read Chinese); a language with no dict reads English. To add a language,
add a dict with the same keys (``tests/test_digest_render.py`` checks the keys match).
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from collections.abc import Sequence

from babel import Locale, UnknownLocaleError
from babel.dates import format_date as babel_format_date

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "date_pattern": "d MMMM y",  # Babel (CLDR) pattern: 3 November 2026
        "read_time": "{minutes} min read",
        "list_separator": ", ",
        "list_and": " and ",
        "colon": ": ",
        "read_more": "Read more",
        "read_in": "Read in {language_name}",
        "greeting": "Hello,",
        "greeting_named": "Hello {name},",
        "intro_one": "Here is the latest article from {site}.",
        "intro_many": "Here are the {count} latest articles from {site}.",
        "why": "You are receiving this email because you subscribed to “{digest}” from {site}.",
        "unsubscribe": "Unsubscribe",
        "view_online": "View in your browser",
        "test_subject": "[Test] {subject}",  # `pipeline digest send NAME --to ADDRESS`
        "corrections_heading": "Corrections",
        "corrections_intro": "These articles from earlier editions have been corrected since:",
        # the public pages of `pipeline serve` (pipeline/web/site.py) and the web version
        "web_footer": "This is the web version of “{digest}”, an email digest from {site}.",
        "web_subscribe": "Subscribe to receive it by email",
        "home_intro": "Our new articles by email and in your feed reader.",
        "digests_heading": "Email digests",
        "feeds_heading": "Feeds",
        "subscribe_link": "Subscribe",
        "archive_link": "Past editions",
        "language_is": "Language: {language_name}",
        "all_feeds_link": "All feeds",
        "feeds_title": "Feeds of {site}",
        "feeds_intro": "Add one of these addresses to your feed reader.",
        "feed_main": "All articles",
        "feed_language": "Language: {value}",
        "feed_section": "Section: {value}",
        "feed_tag": "Tag: {value}",
        "edition_feeds_heading": "Digest editions",
        "editions_title": "Past editions",
        "archive_title": "{digest}: past editions",
        "no_editions": "No edition has been sent yet.",
        "more_articles": "and {count} more",
        "newer": "Newer",
        "older": "Older",
        "page_of": "Page {page} of {pages}",
        "atom_link": "Editions as an Atom feed",
        "not_found_title": "Page not found",
        "not_found_text": "There is no such page here. These links lead to what there is.",
        "home_link": "Home",
        # sign-up email and the pages of `pipeline serve`
        "confirm_subject": "Confirm your subscription to {site}",
        "confirm_body": "Someone, hopefully you, asked for {site}'s email digests to be sent "
        "to this address. To confirm, open this link within 48 hours:\n\n{link}\n\n"
        "If it was not you, ignore this email: nothing more will be sent.",
        "subscribe_title": "Subscribe to {site}",
        "subscribe_intro": "Get a digest of our new articles by email. We will send you a "
        "link to confirm your address.",
        "email_label": "Email address",
        "name_label": "Name (optional)",
        "language_label": "Language of the digest",
        "topics_label": "Topics (optional)",
        "subscribe_button": "Subscribe",
        "check_title": "Check your inbox",
        "check_text": "If {email} can receive our digests, we have sent it a link to "
        "confirm. The link works for 48 hours.",
        "confirm_title": "Confirm your subscription",
        "confirm_text": "Press the button to receive {site}'s digests at {email}.",
        "confirm_button": "Confirm subscription",
        "confirmed_title": "You are subscribed",
        "confirmed_text": "{email} will receive the next digest.",
        "unsubscribe_title": "Unsubscribe",
        "unsubscribe_text": "Stop sending “{digest}” to {email}?",
        "unsubscribe_button": "Unsubscribe",
        "unsubscribed_title": "You are unsubscribed",
        "unsubscribed_text": "{email} will no longer receive “{digest}”.",
        "bad_link_title": "This link does not work",
        "bad_link_text": "It may be incomplete, out of date or altered. Use the newest link "
        "in your email, or write to us.",
        "no_token_text": "To unsubscribe, use the link at the bottom of the email you received.",
        "error_email": "Enter a valid email address ({reason}).",
        "error_name": "The name must be one line of at most 200 characters.",
        "error_language": "Choose one of the languages offered.",
        "error_topics": "Choose topics from the list.",
        "mail_down": "We could not send the confirmation email just now. Please try again later.",
        "too_many": "Too many sign-ups from your network. Please try again in an hour.",
        "form_expired": "The form has expired or did not come from this site. Please try again.",
        # the preference page (pipeline/web/preferences.py), linked from every digest
        "preferences": "Manage your subscription",
        "preferences_title": "Your subscription",
        "preferences_intro": "What {email} receives from {site}.",
        "digests_label": "Digests",
        "no_digests": "No digest is sent in this language with these topics.",
        "pause_label": "Pause all digests",
        "pause_none": "Do not pause",
        "pause_resume": "Resume now",
        "pause_keep": "Stay paused until {date}",
        "pause_one": "For 1 week",
        "pause_weeks": "For {weeks} weeks",
        "paused_until": "Your digests are paused until {date}.",
        "save_button": "Save preferences",
        "leave_all_heading": "Stop all digests",
        "leave_all_button": "Unsubscribe from everything",
        "come_back_text": "{email} receives no digests from {site} at the moment.",
        "come_back_button": "Subscribe again",
        "come_back_note": "We will send you a link to confirm your address.",
        "saved_title": "Your preferences are saved",
        "saved_text": "The next digests follow your choices.",
        "left_all_title": "You are unsubscribed",
        "left_all_text": "{email} will receive no more digests from {site}.",
        "error_pause": "Choose how long to pause from the list.",
        "error_digests": "Choose digests from the list.",
    },
    "zh": {
        "date_pattern": "y年M月d日",  # 2026年11月3日
        "read_time": "阅读时间 {minutes} 分钟",
        "list_separator": "、",
        "list_and": "、",
        "colon": "：",
        "read_more": "阅读全文",
        "read_in": "阅读{language_name}版",
        "greeting": "您好！",
        "greeting_named": "{name}，您好！",
        "intro_one": "以下是{site}的最新文章。",
        "intro_many": "以下是{site}的 {count} 篇最新文章。",
        "why": "您收到这封邮件，是因为您订阅了{site}的《{digest}》。",
        "unsubscribe": "退订",
        "view_online": "在浏览器中查看",
        "test_subject": "[测试] {subject}",
        "corrections_heading": "更正",
        "corrections_intro": "以下往期文章此后已更正：",
        "web_footer": "这是{site}邮件摘要《{digest}》的网页版。",
        "web_subscribe": "订阅，通过电子邮件接收",
        "home_intro": "通过电子邮件或阅读器获取我们的新文章。",
        "digests_heading": "邮件摘要",
        "feeds_heading": "订阅源",
        "subscribe_link": "订阅",
        "archive_link": "往期",
        "language_is": "语言：{language_name}",
        "all_feeds_link": "全部订阅源",
        "feeds_title": "{site}的订阅源",
        "feeds_intro": "将以下任一地址添加到您的阅读器。",
        "feed_main": "全部文章",
        "feed_language": "语言：{value}",
        "feed_section": "栏目：{value}",
        "feed_tag": "标签：{value}",
        "edition_feeds_heading": "邮件摘要各期",
        "editions_title": "往期摘要",
        "archive_title": "《{digest}》往期",
        "no_editions": "尚未发送任何一期。",
        "more_articles": "另有 {count} 篇",
        "newer": "较新",
        "older": "较早",
        "page_of": "第 {page} 页，共 {pages} 页",
        "atom_link": "以 Atom 订阅各期",
        "not_found_title": "找不到此页面",
        "not_found_text": "此处没有这个页面。请通过以下链接浏览本站内容。",
        "home_link": "首页",
        "confirm_subject": "请确认订阅{site}",
        "confirm_body": "有人（希望是您本人）请求将{site}的邮件摘要发送到这个地址。"
        "请在 48 小时内打开以下链接确认：\n\n{link}\n\n"
        "如果不是您本人的操作，请忽略这封邮件，我们不会再发送任何邮件。",
        "subscribe_title": "订阅{site}",
        "subscribe_intro": "通过电子邮件接收新文章摘要。我们会发送一个链接，请您确认地址。",
        "email_label": "电子邮件地址",
        "name_label": "姓名（选填）",
        "language_label": "摘要语言",
        "topics_label": "主题（选填）",
        "subscribe_button": "订阅",
        "check_title": "请查收邮件",
        "check_text": "如果 {email} 可以接收我们的摘要，我们已向其发送确认链接，48 小时内有效。",
        "confirm_title": "确认订阅",
        "confirm_text": "点击按钮，即可在 {email} 接收{site}的邮件摘要。",
        "confirm_button": "确认订阅",
        "confirmed_title": "订阅成功",
        "confirmed_text": "{email} 将收到下一期摘要。",
        "unsubscribe_title": "退订",
        "unsubscribe_text": "不再向 {email} 发送《{digest}》？",
        "unsubscribe_button": "退订",
        "unsubscribed_title": "已退订",
        "unsubscribed_text": "{email} 将不再收到《{digest}》。",
        "bad_link_title": "此链接无效",
        "bad_link_text": "链接可能不完整、已过期或被改动。请使用邮件中最新的链接，或与我们联系。",
        "no_token_text": "如需退订，请使用您所收到邮件底部的链接。",
        "error_email": "请输入有效的电子邮件地址（{reason}）。",
        "error_name": "姓名须为一行，最多 200 个字符。",
        "error_language": "请从所列语言中选择。",
        "error_topics": "请从列表中选择主题。",
        "mail_down": "暂时无法发送确认邮件，请稍后再试。",
        "too_many": "来自您网络的订阅请求过多，请一小时后再试。",
        "form_expired": "表单已过期或并非来自本网站，请重试。",
        "preferences": "管理订阅",
        "preferences_title": "您的订阅",
        "preferences_intro": "{email} 从{site}接收的内容。",
        "digests_label": "邮件摘要",
        "no_digests": "此语言和这些主题下没有邮件摘要。",
        "pause_label": "暂停所有摘要",
        "pause_none": "不暂停",
        "pause_resume": "立即恢复",
        "pause_keep": "保持暂停至 {date}",
        "pause_one": "暂停 1 周",
        "pause_weeks": "暂停 {weeks} 周",
        "paused_until": "您的摘要已暂停至 {date}。",
        "save_button": "保存设置",
        "leave_all_heading": "停止所有摘要",
        "leave_all_button": "退订全部",
        "come_back_text": "{email} 目前不接收{site}的任何摘要。",
        "come_back_button": "重新订阅",
        "come_back_note": "我们会发送一个链接，请您确认地址。",
        "saved_title": "设置已保存",
        "saved_text": "之后的摘要将按您的选择发送。",
        "left_all_title": "已全部退订",
        "left_all_text": "{email} 将不再收到{site}的任何摘要。",
        "error_pause": "请从列表中选择暂停时长。",
        "error_digests": "请从列表中选择摘要。",
    },
}


def catalog_key(language: str) -> str:
    """The ``STRINGS`` key a language tag reads: its first part if known, else English."""
    base = language.replace("_", "-").split("-")[0].lower()
    return base if base in STRINGS else "en"


class _Keep(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def words(language: str, **values: object) -> dict[str, str]:
    """Every string for ``language`` with the given ``{placeholders}`` filled in."""
    filled = _Keep(values)
    return {key: text.format_map(filled) for key, text in STRINGS[catalog_key(language)].items()}


def format_date(moment: dt.datetime, language: str, timezone: str) -> str:
    """The calendar date of ``moment`` in ``timezone``, as readers of ``language`` write it."""
    zone = zoneinfo.ZoneInfo(timezone)
    local = moment.astimezone(zone) if moment.tzinfo else moment.replace(tzinfo=zone)
    key = catalog_key(language)
    return babel_format_date(local.date(), STRINGS[key]["date_pattern"], locale=key)


def read_time(minutes: int, language: str) -> str:
    """``3 min read`` / ``阅读时间 3 分钟``; never less than a minute."""
    return words(language, minutes=max(1, minutes))["read_time"]


def join_names(names: Sequence[str], language: str) -> str:
    """``A``, ``A and B``, ``A, B and C``; in Chinese ``A、B、C``."""
    names = [n for n in names if n.strip()]
    if len(names) < 2:
        return "".join(names)
    strings = STRINGS[catalog_key(language)]
    return strings["list_separator"].join(names[:-1]) + strings["list_and"] + names[-1]


@functools.lru_cache(maxsize=512)  # Babel takes milliseconds; pages ask it on every request
def language_name(tag: str, in_language: str) -> str:
    """The name of language ``tag`` written in ``in_language`` (``中文``, ``English``)."""
    try:
        locale = Locale.parse(tag.replace("-", "_"))
        name = locale.get_language_name(Locale.parse(in_language.replace("-", "_")))
    except (UnknownLocaleError, ValueError):
        return tag
    return name or tag


def translation_label(tag: str) -> str:
    """A link label to the ``tag`` version, written in that language: ``阅读中文版``."""
    key = catalog_key(tag)
    return words(key, language_name=language_name(tag, key))["read_in"]
