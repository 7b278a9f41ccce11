"""The widths of the state store's article columns, which an Article is checked against
as it is built (pipeline.model): PostgreSQL refuses a longer value, failing the whole
source's transaction; SQLite keeps it. pipeline.schema declares the columns with these
numbers; they live apart from it so that building an Article never imports SQLAlchemy
(`pipeline check` renders sample digests from Articles)."""

ARTICLE_WIDTHS: dict[str, int] = {
    "id": 512,
    "source": 100,
    "language": 35,
    "section": 100,
    "translation_of": 512,
}
TAG_WIDTH = 200  # article_tags.tag_key
