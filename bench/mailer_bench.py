"""SmtpTransport against a bare smtplib loop, to a local aiosmtpd server that discards.

    python bench/mailer_bench.py [--count 2000] [--scale]

N digest-shaped messages (multipart/alternative: ~30 KB of table-layout HTML with
inline styles, a ~3 KB text part, English and Chinese, per-recipient headers) are built
before timing. Both runs send every message over one plain connection to an aiosmtpd
server in a separate process on 127.0.0.1 (so it does not share our GIL):
- ``ours``: pipeline.transports.smtp.SmtpTransport(...).send(message), then close();
- ``bare``: smtplib.SMTP(host, port).send_message(message) in a loop, then quit() —
  the ceiling for the same work, without classification, pacing or reconnects;
- ``signed``: ``ours`` with a DKIM signer (a 2048-bit RSA key made for the run), as
  with ``email.dkim``: the extra cost of signing each message.
Each is run twice, alternating, and the better run kept. Wall time includes the
server's share, so ``cpu`` (this process only) shows the client's own cost per message.
With ``--scale`` the same is done at 10x the count; at most 2,000 distinct messages are
built and cycled (sending flattens every message anew, so reuse costs as much as new).
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import smtplib
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.settings.email import SmtpSettings
from pipeline.transports.smtp import SmtpTransport

DISTINCT = 2000
HEAD = """<!doctype html><html lang="{lang}" xmlns="http://www.w3.org/1999/xhtml"
xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office">
<head><title>{subject}</title><!--[if !mso]><!--><meta http-equiv="X-UA-Compatible"
content="IE=edge"><!--<![endif]--><meta http-equiv="Content-Type" content="text/html;
charset=UTF-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<style type="text/css">#outlook a {{ padding:0; }} body {{ margin:0;padding:0;
-webkit-text-size-adjust:100%;-ms-text-size-adjust:100%; }} table, td {{
border-collapse:collapse;mso-table-lspace:0pt;mso-table-rspace:0pt; }} img {{ border:0;
height:auto;line-height:100%; outline:none;text-decoration:none;
-ms-interpolation-mode:bicubic; }} p {{ display:block;margin:13px 0; }}</style>
<!--[if mso]><noscript><xml><o:OfficeDocumentSettings><o:AllowPNG/><o:PixelsPerInch>96
</o:PixelsPerInch></o:OfficeDocumentSettings></xml></noscript><![endif]-->
<style type="text/css">@media only screen and (min-width:480px) {{ .mj-column-per-100 {{
width:100% !important; max-width: 100%; }} .mj-column-per-33 {{ width:33.33% !important;
max-width: 33.33%; }} .mj-column-per-67 {{ width:66.67% !important; max-width: 66.67%; }}
}}</style><style media="screen and (min-width:480px)">.moz-text-html .mj-column-per-100
{{ width:100% !important; max-width: 100%; }}</style><style type="text/css">@media only
screen and (max-width:479px) {{ table.mj-full-width-mobile {{ width: 100% !important; }}
td.mj-full-width-mobile {{ width: auto !important; }} }} .dark-mode-bg {{ background:
#111827 !important; }} a {{ color:#0b3d91; }}</style></head>
<body style="word-spacing:normal;background-color:#f3f4f6;"><div style="display:none;
font-size:1px;color:#ffffff;line-height:1px;max-height:0px;max-width:0px;opacity:0;
overflow:hidden;">{preheader}</div><div style="background-color:#f3f4f6;" lang="{lang}">
"""
ARTICLE = """<!--[if mso | IE]><table align="center" border="0" cellpadding="0"
cellspacing="0" class="" role="presentation" style="width:600px;" width="600" bgcolor="#ffffff"
><tr><td style="line-height:0px;font-size:0px;mso-line-height-rule:exactly;"><![endif]-->
<div style="background:#ffffff;background-color:#ffffff;margin:0px auto;max-width:600px;">
<table align="center" border="0" cellpadding="0" cellspacing="0" role="presentation"
style="background:#ffffff;background-color:#ffffff;width:100%;"><tbody><tr><td
style="border-bottom:1px solid #e5e7eb;direction:ltr;font-size:0px;padding:16px 0;
text-align:center;"><!--[if mso | IE]><table role="presentation" border="0" cellpadding="0"
cellspacing="0"><tr><td class="" style="vertical-align:top;width:200px;" ><![endif]-->
<div class="mj-column-per-33 mj-outlook-group-fix" style="font-size:0px;text-align:left;
direction:ltr;display:inline-block;vertical-align:top;width:100%;"><table border="0"
cellpadding="0" cellspacing="0" role="presentation" style="vertical-align:top;"
width="100%"><tbody><tr><td align="center" style="font-size:0px;padding:10px 25px;
word-break:break-word;"><a href="https://news.example.org/news/{n}/" target="_blank"><img
alt="{title}" height="auto" src="https://news.example.org/media/{n}-600.jpg"
style="border:0;display:block;outline:none;text-decoration:none;height:auto;width:100%;
font-size:13px;" width="150"></a></td></tr></tbody></table></div><!--[if mso | IE]></td>
<td class="" style="vertical-align:top;width:400px;" ><![endif]--><div
class="mj-column-per-67 mj-outlook-group-fix" style="font-size:0px;text-align:left;
direction:ltr;display:inline-block;vertical-align:top;width:100%;"><table border="0"
cellpadding="0" cellspacing="0" role="presentation" style="vertical-align:top;"
width="100%"><tbody><tr><td align="left" style="font-size:0px;padding:4px 25px;
word-break:break-word;"><div style="font-family:Helvetica, Arial, 'PingFang SC',
'Microsoft YaHei', sans-serif;font-size:20px;font-weight:bold;line-height:1.3;
text-align:left;color:#111827;"><a href="https://news.example.org/news/{n}/" style=
"color:#0b3d91;text-decoration:none;">{title}</a></div></td></tr><tr><td align="left"
style="font-size:0px;padding:4px 25px;word-break:break-word;"><div style="font-family:
Helvetica, Arial, 'PingFang SC', 'Microsoft YaHei', sans-serif;font-size:15px;
line-height:1.5;text-align:left;color:#374151;">{excerpt}</div></td></tr><tr><td
align="left" style="font-size:0px;padding:4px 25px;word-break:break-word;"><div
style="font-family:Helvetica, Arial, sans-serif;font-size:13px;line-height:1.5;
text-align:left;color:#6b7280;">{author} · 2026-11-23 · {minutes}</div></td></tr>
</tbody></table></div><!--[if mso | IE]></td></tr></table><![endif]--></td></tr></tbody>
</table></div><!--[if mso | IE]></td></tr></table><![endif]-->
"""
FOOT = """<div style="margin:0px auto;max-width:600px;"><table align="center" border="0"
cellpadding="0" cellspacing="0" role="presentation" style="width:100%;"><tbody><tr><td
style="direction:ltr;font-size:0px;padding:20px 0;text-align:center;"><div style=
"font-family:Helvetica, Arial, sans-serif;font-size:12px;line-height:1.5;color:#6b7280;">
Mountain News · Jawalakhel, Lalitpur 44700, Nepal<br><a href="https://news.example.org/
unsubscribe?token={token}" style="color:#6b7280;">Unsubscribe</a> · <a
href="https://news.example.org/digests/weekly-en/2026-11-23T09:00+05:45" style=
"color:#6b7280;">View in your browser</a></div></td></tr></tbody></table></div></div>
</body></html>"""
EN = (
    "Glaciers in the Hindu Kush Himalaya lost mass faster this decade than the last, "
    "a new assessment finds, with consequences for the 240 million people who live in "
    "the mountains and the 1.65 billion downstream who depend on their rivers…"
)
ZH = (
    "兴都库什—喜马拉雅地区的冰川在过去十年中消融速度加快，"
    "影响山区两亿四千万居民以及下游依赖这些河流的十六亿五千万人口……"
)
ITEMS = 10


def build(count: int) -> list[EmailMessage]:
    messages = []
    for i in range(min(count, DISTINCT)):
        zh = i % 3 == 0
        subject = "本周山地新闻" if zh else "This week at Mountain News"
        token = f"{i:064x}"
        html = (
            HEAD.format(lang="zh-CN" if zh else "en", subject=subject, preheader=ZH if zh else EN)
            + "".join(
                ARTICLE.format(
                    n=i * 100 + k,
                    title=f"冰川报告 {k}" if zh else f"Glacier report {k}: the melt accelerates",
                    excerpt=ZH if zh else EN,
                    author="编辑部" if zh else "Staff Writer",
                    minutes="阅读时间 3 分钟" if zh else "3 min read",
                )
                for k in range(ITEMS)
            )
            + FOOT.format(token=token)
        )
        text = "\n\n".join(
            f"{'冰川报告' if zh else 'Glacier report'} {k}\n{ZH if zh else EN}\n"
            f"https://news.example.org/news/{i * 100 + k}/"
            for k in range(ITEMS)
        )
        msg = EmailMessage()
        msg["From"] = "Mountain News <news@example.org>"
        msg["To"] = formataddr(("读者" if zh else "Reader", f"reader{i}@example.org"))
        msg["Subject"] = subject
        msg["Date"] = format_datetime(dt.datetime.now(dt.UTC))
        msg["Message-ID"] = f"<{i:032x}@example.org>"
        msg["List-Unsubscribe"] = f"<https://news.example.org/unsubscribe?token={token}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        messages.append(msg)
    return messages


def serve(ports: mp.Queue, stop: mp.Event) -> None:
    from aiosmtpd.controller import Controller

    class Discard:
        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    class Server(Controller):
        def _trigger_server(self) -> None:
            self.port = self.server.sockets[0].getsockname()[1]
            super()._trigger_server()

    server = Server(Discard(), hostname="127.0.0.1", port=0, data_size_limit=None)
    server.start()
    ports.put(server.port)
    stop.wait()
    server.stop()


def ours(port: int, messages: list[EmailMessage], count: int) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=port, security="none"))
    for i in range(count):
        transport.send(messages[i % len(messages)])
    transport.close()
    return time.perf_counter() - start, time.process_time() - cpu


def signed(port: int, messages: list[EmailMessage], count: int) -> tuple[float, float]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from pipeline.dkim import Signer, parse_key
    from pipeline.settings.dkim import DkimSettings

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    settings = DkimSettings(domain="example.org", selector="s", private_key_file=Path("k"))
    sign = Signer(settings, parse_key(pem))
    start, cpu = time.perf_counter(), time.process_time()
    transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=port, security="none"), sign=sign)
    for i in range(count):
        transport.send(messages[i % len(messages)])
    transport.close()
    return time.perf_counter() - start, time.process_time() - cpu


def bare(port: int, messages: list[EmailMessage], count: int) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    smtp = smtplib.SMTP("127.0.0.1", port)
    for i in range(count):
        smtp.send_message(messages[i % len(messages)])
    smtp.quit()
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--scale", action="store_true", help="also run at 10x the count")
    args = parser.parse_args()
    with discard_server() as port:
        messages = build(args.count)
        html = messages[0].get_body(("html",))
        size = len(html.get_content().encode()) if html else 0
        wire = len(messages[0].as_bytes())
        print(f"messages: HTML {size / 1024:.1f} KB, {wire / 1024:.1f} KB on the wire")
        print(
            f"{'messages':>9} {'ours s':>7} {'ours/s':>7} {'bare s':>7} {'bare/s':>7} "
            f"{'ratio':>6} {'ours cpu ms':>11} {'bare cpu ms':>11}"
        )
        for count in [args.count, args.count * 10] if args.scale else [args.count]:
            runs: dict[str, list[tuple[float, float]]] = {"ours": [], "bare": [], "signed": []}
            for _ in range(2):
                runs["bare"].append(bare(port, messages, count))
                runs["ours"].append(ours(port, messages, count))
                runs["signed"].append(signed(port, messages, count))
            (o, o_cpu), (b, b_cpu) = min(runs["ours"]), min(runs["bare"])
            s, s_cpu = min(runs["signed"])
            print(
                f"{count:>9,} {o:>7.2f} {count / o:>7.0f} {b:>7.2f} {count / b:>7.0f} "
                f"{o / b:>6.2f} {o_cpu / count * 1000:>11.2f} {b_cpu / count * 1000:>11.2f}",
                flush=True,
            )
            print(
                f"{'signed':>9} {s:>7.2f} {count / s:>7.0f} {'':>7} {'':>7} {s / b:>6.2f} "
                f"{s_cpu / count * 1000:>11.2f}   (ours with DKIM: "
                f"+{(s_cpu - o_cpu) / count * 1000:.2f} ms cpu a message)",
                flush=True,
            )


@contextmanager
def discard_server() -> Iterator[int]:
    """An aiosmtpd server that accepts and discards, in its own process (so it does not
    share our GIL) on 127.0.0.1; yields its port."""
    context = mp.get_context("spawn")
    ports, stop = context.Queue(), context.Event()
    process = context.Process(target=serve, args=(ports, stop), daemon=True)
    process.start()
    try:
        yield ports.get(timeout=30)
    finally:
        stop.set()
        process.join(10)


if __name__ == "__main__":
    main()
