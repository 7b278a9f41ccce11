"""The WordPress source: wp/v2/posts with _embed, pagination, early stop, errors."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
import requests
from werkzeug import Request, Response

from pipeline.errors import SourceUnavailable
from pipeline.sources.wordpress import WordPressSource, WordPressSourceSettings

UTC = dt.UTC
API = "/wp-json/wp/v2/posts"
SITE = "https://wp.example.org"


def post(post_id: int, modified: str = "2024-03-02T10:00:00", **changes) -> dict:
    """A post shaped like what WordPress 6 sends for /wp/v2/posts?_embed=1."""
    data = {
        "id": post_id,
        "date": "2024-03-01T15:15:00",
        "date_gmt": "2024-03-01T09:30:00",
        "guid": {"rendered": f"{SITE}/?p={post_id}"},
        "modified": modified,
        "modified_gmt": modified,
        "slug": f"post-{post_id}",
        "status": "publish",
        "type": "post",
        "link": f"{SITE}/2024/03/01/post-{post_id}/",
        "title": {"rendered": f"Post number {post_id}"},
        "content": {
            "rendered": f"<p>Body of post {post_id}, long enough.</p>\n",
            "protected": False,
        },
        "excerpt": {
            "rendered": f"<p>Body of post {post_id}, long enough.</p>\n",
            "protected": False,
        },
        "author": 3,
        "featured_media": 0,
        "comment_status": "open",
        "sticky": False,
        "format": "standard",
        "categories": [1],
        "tags": [],
        "_links": {"self": [{"href": f"{SITE}/wp-json/wp/v2/posts/{post_id}"}]},
        "_embedded": {
            "author": [{"id": 3, "name": "Pema Sherpa", "url": "", "slug": "pema"}],
            "wp:term": [
                [
                    {
                        "id": 1,
                        "name": "Uncategorized",
                        "slug": "uncategorized",
                        "taxonomy": "category",
                    }
                ],
                [],
            ],
        },
    }
    data.update(changes)
    return data


FEATURED = {
    "id": 88,
    "type": "attachment",
    "media_type": "image",
    "mime_type": "image/jpeg",
    "alt_text": "Red panda in a rhododendron",
    "caption": {"rendered": "<p>Photo: K. Lama</p>\n"},
    "media_details": {"width": 1600, "height": 900, "sizes": {}},
    "source_url": f"{SITE}/wp-content/uploads/2024/03/red-panda.jpg",
}
RICH = post(
    501,
    modified="2024-03-05T08:00:00",
    title={"rendered": "Red pandas &#038; rhododendrons: what&#8217;s blooming"},
    content={
        "rendered": "<p>In the forests of Ilam&nbsp;red pandas feed.</p>\n",
        "protected": False,
    },
    excerpt={"rendered": "<p>A hand-written teaser about red pandas.</p>\n", "protected": False},
    featured_media=88,
    _embedded={
        "author": [{"id": 3, "name": "Pema Sherpa"}, {"id": 4, "name": "Li &amp; Wang"}],
        "wp:featuredmedia": [FEATURED],
        "wp:term": [
            [{"id": 5, "name": "Wildlife", "slug": "wildlife", "taxonomy": "category"}],
            [
                {"id": 9, "name": "Red panda", "slug": "red-panda", "taxonomy": "post_tag"},
                {"id": 10, "name": "Ilam &amp; Panchthar", "slug": "ilam", "taxonomy": "post_tag"},
            ],
        ],
    },
)
CHINESE = post(
    502,
    slug="%e5%b0%8f%e7%86%8a%e7%8c%ab",
    link=f"{SITE}/2024/03/01/%e5%b0%8f%e7%86%8a%e7%8c%ab/",
    title={"rendered": "小熊猫栖息地调查"},
    content={
        "rendered": "<p>" + "调查人员在伊拉姆记录到小熊猫。" * 40 + "</p>\n",
        "protected": False,
    },
    excerpt={"rendered": "<p>" + "调查人员在伊拉姆记录到小熊猫。" * 3 + " [&hellip;]</p>\n"},
)


def make_source(httpserver, site, **options) -> WordPressSource:
    url = httpserver.url_for("/").rstrip("/")
    settings = WordPressSourceSettings(type="wordpress", name="blog", url=url, **options)
    return WordPressSource(settings, site, requests.Session())


def serve_pages(httpserver, pages: list[list[dict]], total: bool = True) -> None:
    """Serve ``pages`` like WordPress; past the last page, its 400 error."""

    def handler(request: Request) -> Response:
        page = int(request.args.get("page", "1"))
        headers = {"X-WP-Total": str(sum(map(len, pages))), "X-WP-TotalPages": str(len(pages))}
        if page > len(pages):
            error = {
                "code": "rest_post_invalid_page_number",
                "message": "The page number requested is larger than the number of pages "
                "available.",
                "data": {"status": 400},
            }
            return Response(json.dumps(error), status=400, content_type="application/json")
        return Response(
            json.dumps(pages[page - 1]),
            content_type="application/json; charset=UTF-8",
            headers=headers if total else {},
        )

    httpserver.expect_request(API).respond_with_handler(handler)


def requested_pages(httpserver) -> list[str]:
    return [request.args["page"] for request, _ in httpserver.log if request.path == API]


def test_posts_become_articles(httpserver, site):
    serve_pages(httpserver, [[RICH, post(7)]])
    scan = make_source(httpserver, site).scan({}, {})
    assert scan.rejected == [] and scan.complete is False
    articles = {item.key: item.article for item in scan.changed}
    rich = articles["501"]
    assert rich.id == "blog:501" and rich.source == "blog" and rich.section == "blog"
    assert rich.title == "Red pandas & rhododendrons: what’s blooming"
    assert rich.url == f"{SITE}/2024/03/01/post-501/"
    assert rich.authors == ("Pema Sherpa", "Li & Wang")
    assert rich.published == dt.datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
    assert rich.updated == dt.datetime(2024, 3, 5, 8, 0, tzinfo=UTC)
    assert rich.published.utcoffset() == dt.timedelta(0)
    assert rich.language == "en"
    assert rich.tags == ("Red panda", "Ilam & Panchthar", "Wildlife")  # tags, then categories
    assert rich.image == FEATURED["source_url"]
    assert rich.image_alt == "Red panda in a rhododendron"
    assert rich.summary == "A hand-written teaser about red pandas."  # manual excerpt kept
    plain = articles["7"]
    assert plain.tags == ()  # "Uncategorized" is not a tag
    assert plain.image is None and plain.image_alt is None
    assert plain.summary == "Body of post 7, long enough."  # computed, not WordPress's copy
    (request, _) = httpserver.log[0]
    assert request.args.to_dict() == {
        "per_page": "100",
        "page": "1",
        "orderby": "modified",
        "order": "desc",
        "_embed": "1",
    }


def test_chinese_posts_round_trip(httpserver, site):
    serve_pages(httpserver, [[CHINESE]])
    (item,) = make_source(httpserver, site, language="zh-CN").scan({}, {}).changed
    article = item.article
    assert article.title == "小熊猫栖息地调查"
    assert article.language == "zh-CN"
    assert article.url == f"{SITE}/2024/03/01/%e5%b0%8f%e7%86%8a%e7%8c%ab/"
    assert "[" not in article.summary  # WordPress's automatic excerpt was replaced
    assert article.summary.startswith(
        "调查人员在伊拉姆记录到小熊猫。"
    ) and article.summary.endswith("…")
    assert article.read_minutes >= 1


@pytest.mark.parametrize("suffix", ["/", "/wp-json", "/wp-json/"])
def test_base_url_may_be_the_site_or_the_api_root(httpserver, site, suffix):
    serve_pages(httpserver, [[post(1)]])
    settings = WordPressSourceSettings(
        type="wordpress", name="blog", url=httpserver.url_for("/").rstrip("/") + suffix
    )
    scan = WordPressSource(settings, site, requests.Session()).scan({}, {})
    assert [item.key for item in scan.changed] == ["1"]


def test_pagination_follows_total_pages(httpserver, site):
    pages = [[post(n) for n in range(start, start + 100)] for start in (1000, 2000)]
    pages.append([post(3000), post(3001)])
    serve_pages(httpserver, pages)
    scan = make_source(httpserver, site).scan({}, {})
    assert len(scan.changed) == 202
    assert requested_pages(httpserver) == ["1", "2", "3"]


def test_max_pages_and_total_pages_limit_requests(httpserver, site):
    serve_pages(httpserver, [[post(n) for n in range(100)]] * 3)
    make_source(httpserver, site, max_pages=2).scan({}, {})
    assert requested_pages(httpserver) == ["1", "2"]


def test_stops_at_the_first_page_with_nothing_new(httpserver, site):
    pages = [[post(n) for n in range(start, start + 100)] for start in (100, 200, 300)]
    serve_pages(httpserver, pages)
    source = make_source(httpserver, site)
    first = source.scan({}, {})
    known = {item.key: item.fingerprint for item in first.changed}
    assert known["150"] == "150:2024-03-02T10:00:00"

    httpserver.clear()
    pages[0][0] = post(100, modified="2024-03-09T12:00:00")  # edited: now the newest
    serve_pages(httpserver, pages)
    second = source.scan(known, {})
    assert [item.key for item in second.changed] == ["100"]
    assert second.changed[0].article.updated == dt.datetime(2024, 3, 9, 12, tzinfo=UTC)
    assert len(second.unchanged) == 199 and "100" not in second.unchanged
    assert requested_pages(httpserver) == ["1", "2"]  # page 2 had nothing new: stop
    assert second.complete is False


def test_400_past_the_last_page_ends_the_scan(httpserver, site):
    serve_pages(httpserver, [[post(n) for n in range(100)]], total=False)
    scan = make_source(httpserver, site).scan({}, {})
    assert len(scan.changed) == 100 and scan.rejected == []
    assert requested_pages(httpserver) == ["1", "2"]


def test_bad_post_is_rejected_and_protected_post_skipped(httpserver, site):
    untitled = post(8, title={"rendered": ""})
    undated = post(9, date_gmt=None, date=None)
    locked = post(10, content={"rendered": "", "protected": True})
    serve_pages(httpserver, [[untitled, post(11), undated, locked]])
    scan = make_source(httpserver, site).scan({}, {})
    assert [item.key for item in scan.changed] == ["11"]
    messages = sorted(problem.message for problem in scan.rejected)
    assert messages[0].startswith("post 8: ") and "title" in messages[0]
    assert messages[1].startswith("post 9: ") and "date" in messages[1]
    problem = scan.rejected[0]
    assert problem.file == make_source(httpserver, site).settings.url
    assert "wp-admin/post.php?post=8&action=edit" in problem.hint


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, {"code": "rest_no_route", "message": "No route was found"}, "HTTP 404"),
        (500, {"code": "internal_server_error"}, "HTTP 500"),
        (
            400,
            {"code": "rest_invalid_param", "message": "Invalid parameter(s): orderby"},
            "orderby",
        ),
    ],
)
def test_http_errors_are_unavailable(httpserver, site, status, body, expected):
    httpserver.expect_request(API).respond_with_json(body, status=status)
    with pytest.raises(SourceUnavailable, match="'blog'") as caught:
        make_source(httpserver, site).scan({}, {})
    assert expected in str(caught.value) and API in str(caught.value)


def test_not_wordpress_is_unavailable(httpserver, site):
    httpserver.expect_request(API).respond_with_data("<html>Hello</html>", content_type="text/html")
    with pytest.raises(SourceUnavailable, match="not a list of posts"):
        make_source(httpserver, site).scan({}, {})


def test_timeout_is_unavailable(httpserver, site):
    def slow(request: Request) -> Response:
        time.sleep(0.3)
        return Response("[]", content_type="application/json")

    httpserver.expect_request(API).respond_with_handler(slow)
    with pytest.raises(SourceUnavailable, match="did not answer within"):
        make_source(httpserver, site, timeout=0.1).scan({}, {})
    deadline = time.monotonic() + 5  # let the server finish, so the next test starts clean
    while not httpserver.log and time.monotonic() < deadline:
        time.sleep(0.05)


# -- one bad post or an odd answer never stops the scan ---------------------------------


def test_posts_of_any_shape_are_rejected_one_by_one(httpserver, site):
    odd = [
        "not a post",
        post(True),  # JSON true is no post id
        post(21, _embedded=["a list"]),
        post(22, _embedded={"wp:term": [[{"name": 5, "taxonomy": "post_tag"}]]}),
        post(23, title=["a", "list"], date_gmt={"nested": 1}),
        post(24, link="http://[::1", slug=None),
        post(25),
    ]
    serve_pages(httpserver, [odd])
    scan = make_source(httpserver, site).scan({}, {})
    assert "25" in {item.key for item in scan.changed}
    located = [p.message.split(":")[0] for p in scan.rejected]
    assert located[:2] == ["post #1", "post #2"]
    for problem in scan.rejected:
        assert problem.file == make_source(httpserver, site).settings.url and problem.message


def test_a_post_listed_on_two_pages_is_scanned_once(httpserver, site):
    page1 = [post(n) for n in range(300, 200, -1)]
    page2 = [page1[-1]] + [post(n) for n in range(200, 190, -1)]
    serve_pages(httpserver, [page1, page2])
    keys = [item.key for item in make_source(httpserver, site).scan({}, {}).changed]
    assert len(keys) == 110 == len(set(keys))


@pytest.mark.parametrize("total", ["²", "9" * 5000, "-1", " 2 "])
def test_an_odd_total_pages_header_is_ignored(httpserver, site, total):
    def handler(request: Request) -> Response:
        return Response(
            json.dumps([post(1)]),
            content_type="application/json",
            headers={"X-WP-TotalPages": total},
        )

    httpserver.expect_request(API).respond_with_handler(handler)
    assert [item.key for item in make_source(httpserver, site).scan({}, {}).changed] == ["1"]


def test_json_nested_past_the_stack_is_unavailable_not_a_crash(httpserver, site):
    httpserver.expect_request(API).respond_with_data(
        "[" * 100_000 + "]" * 100_000, content_type="application/json"
    )
    with pytest.raises(SourceUnavailable, match="not a list of posts"):
        make_source(httpserver, site).scan({}, {})


def test_unsafe_links_are_dropped_and_iris_encoded(httpserver, site, caplog):
    """A link or featured image readers must not follow is dropped, not the post."""
    hostile = post(
        601,
        link="javascript:alert(1)",
        content={"rendered": '<p><a href="javascript:alert(1)">x</a> body</p>', "protected": False},
        _embedded={"wp:featuredmedia": [FEATURED | {"source_url": "data:image/png;base64,AA"}]},
    )
    chinese = post(
        602,
        link=f"{SITE}/2024/03/01/小熊猫/",
        _embedded={"wp:featuredmedia": [FEATURED | {"source_url": f"{SITE}/图/熊猫.jpg"}]},
    )
    serve_pages(httpserver, [[hostile, chinese]])
    with caplog.at_level("WARNING"):
        scan = make_source(httpserver, site).scan({}, {})
    assert not scan.rejected
    articles = {item.key: item.article for item in scan.changed}
    assert articles["601"].url == "https://news.example.org/blog/post-601/"  # the default
    assert articles["601"].image is None and articles["601"].image_alt is None
    assert "javascript" not in articles["601"].body_html
    assert articles["602"].url == (f"{SITE}/2024/03/01/%E5%B0%8F%E7%86%8A%E7%8C%AB/")
    assert articles["602"].image == f"{SITE}/%E5%9B%BE/%E7%86%8A%E7%8C%AB.jpg"
    warnings = " ".join(r.getMessage() for r in caplog.records)
    assert "post 601: link dropped: 'javascript:alert(1)'" in warnings
    assert "post 601: image dropped: 'data:image/png" in warnings
