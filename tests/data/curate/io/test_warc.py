"""WARC and WET input (files the test writes, byte by byte, in the WARC/1.0 format) and the domain
blocklist: URL and date kept, captures that are not documents quarantined with a reason, blocklisted
hosts removed and counted, conservation in every run."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from curate_helpers import read_records

from pretrain.configlib import ConfigError, validate
from pretrain.data.curate import CurateConfig, curate
from pretrain.data.curate.io.readers import expand_inputs, plan_shards, read_shard
from pretrain.data.curate.rules.blocklist import blocked_by, host_of, parse_domains

G = CurateConfig().domain_globs


def warc_record(wtype: str, uri: str, date: str, block: bytes, ctype: str, rid: str) -> bytes:
    head = (f"WARC/1.0\r\nWARC-Type: {wtype}\r\nWARC-Target-URI: {uri}\r\nWARC-Date: {date}\r\n"
            f"WARC-Record-ID: <urn:uuid:{rid}>\r\nContent-Type: {ctype}\r\nContent-Length: {len(block)}\r\n\r\n")
    return head.encode() + block + b"\r\n\r\n"


def http_response(body: bytes, ctype: str = "text/html; charset=utf-8", status: str = "200 OK") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def page(title: str, text: str) -> bytes:
    paras = "".join(f"<p>{s.strip()}.</p>\n" for s in text.split(".") if s.strip())
    return (f"<!DOCTYPE html><html><head><title>{title}</title></head><body><nav><a href='/'>Home</a></nav>"
            f"<article><h1>{title}</h1>\n{paras}</article><footer>Contact us</footer></body></html>").encode()


def write_warc(path: Path, records: list[bytes]) -> None:
    """Plain, or (for .gz) one gzip member per record as Common Crawl writes them."""
    data = b"".join(gzip.compress(r) for r in records) if path.suffix == ".gz" else b"".join(records)
    path.write_bytes(data)


@pytest.fixture
def crawl(tmp_path: Path, prose) -> Path:
    root = tmp_path / "crawl"
    root.mkdir()
    info = warc_record("warcinfo", "", "2024-03-01T00:00:00Z", b"software: test\r\n", "application/warc-fields", "0")
    recs = [info]
    for i, host in enumerate(["https://www.good.org/a", "http://news.bad.com/story?id=3", "https://bad.com/",
                              "https://notbad.com/x"]):
        recs.append(warc_record("request", host, "2024-03-01T10:00:00Z", b"GET / HTTP/1.1\r\n\r\n",
                                "application/http; msgtype=request", f"r{i}"))
        recs.append(warc_record("response", host, f"2024-03-01T10:0{i}:30Z",
                                http_response(page(f"Title {i}", prose(10 + i, 12))),
                                "application/http; msgtype=response", f"p{i}"))
    recs.append(warc_record("response", "https://www.good.org/logo.png", "2024-03-01T11:00:00Z",
                            http_response(b"\x89PNG....", "image/png"), "application/http; msgtype=response", "img"))
    recs.append(warc_record("response", "https://www.good.org/old", "2024-03-01T11:00:01Z",
                            http_response(b"", "text/html", "301 Moved Permanently"),
                            "application/http; msgtype=response", "redir"))
    write_warc(root / "CC-MAIN-0001.warc.gz", recs)
    wet = [info, warc_record("conversion", "https://blog.example.net/post", "2024-03-02T08:15:00Z",
                             prose(30, 12).encode(), "text/plain", "w0"),
           warc_record("conversion", "https://www.bad.com/other", "2024-03-02T08:16:00Z",
                       prose(31, 12).encode(), "text/plain", "w1")]
    write_warc(root / "CC-MAIN-0001.warc.wet", wet)
    write_warc(root / "plain.warc", recs[:3])
    return root


def read(paths, max_bytes=1 << 20):
    out = []
    for shard in plan_shards(expand_inputs(paths), 1000, 100, max_bytes):
        out.extend(read_shard(shard, "text", G, max_bytes))
    return out


def test_warc_and_wet_records_keep_url_and_date(crawl: Path):
    items = read([crawl])
    docs = [d for d in items if type(d).__name__ == "Document"]
    quarantined = [q for q in items if type(q).__name__ == "Quarantined"]
    by_url: dict = {}
    for d in docs:
        by_url.setdefault(d.meta["url"], d)
    assert set(by_url) == {"https://www.good.org/a", "http://news.bad.com/story?id=3", "https://bad.com/",
                           "https://notbad.com/x", "https://blog.example.net/post", "https://www.bad.com/other"}
    a = by_url["https://www.good.org/a"]
    assert a.domain == "web" and a.meta["format"] == "html" and a.meta["date"] == "2024-03-01T10:00:30Z"
    assert a.meta["warc_record_id"] == "<urn:uuid:p0>" and "<article>" in a.text
    assert ".warc.gz@" in a.source
    wet = by_url["https://blog.example.net/post"]
    assert wet.meta["date"] == "2024-03-02T08:15:00Z" and "format" not in wet.meta and "<" not in wet.text
    # requests and warcinfo are not documents; the image and the redirect are counted with their reason
    assert sorted(q.reason for q in quarantined) == ["HTTP status 301", "content type image/png is not HTML or text"]
    assert all(q.domain == "web" and q.source.split("@")[0].endswith(".warc.gz") for q in quarantined)
    # the plain (uncompressed) WARC holds the first response
    assert any(d.source.startswith(str(crawl / "plain.warc")) for d in docs)


def test_truncated_oversized_and_non_warc_are_quarantined(tmp_path: Path, prose):
    body = http_response(page("T", prose(1, 12)))
    good = warc_record("response", "https://a.org/", "2024-01-01T00:00:00Z", body, "application/http", "a")
    big = warc_record("response", "https://a.org/big", "2024-01-01T00:00:00Z",
                      http_response(b"<html>" + b"x" * 5000 + b"</html>"), "application/http", "b")
    (tmp_path / "cut.warc").write_bytes(good + big[:-1500])
    (tmp_path / "notwarc.warc.gz").write_bytes(gzip.compress(b"hello, this is not a WARC file\n"))
    items = read([tmp_path], max_bytes=100_000)
    reasons = sorted(getattr(x, "reason", "ok") for x in items)
    assert reasons.count("ok") == 1 and len(reasons) == 3
    assert any(r.startswith("truncated WARC record") for r in reasons)
    assert any(r.startswith("not a WARC file") for r in reasons)
    items = read([tmp_path / "cut.warc"], max_bytes=4000)  # the second page is over this limit: not read
    assert [getattr(x, "reason", "ok") for x in items] == ["ok", "record payload too large (5013 bytes > 4000)"]


def test_blocklist_parsing_and_matching():
    dom = parse_domains(["# UT1 adult/domains", "bad.com", "*.evil.org", "http://shady.net/path", "", "  ",
                         "Bücher.example"])
    assert dom == {"bad.com", "evil.org", "shady.net", "xn--bcher-kva.example"}
    assert blocked_by(host_of("http://news.bad.com:8080/x"), dom) == "bad.com"
    assert blocked_by(host_of("https://BAD.COM./"), dom) == "bad.com"
    assert blocked_by(host_of("https://notbad.com/"), dom) is None
    assert blocked_by(host_of("https://bücher.example/a"), dom) == "xn--bcher-kva.example"
    assert host_of("not a url") == ""


def test_blocklist_step_in_default_pipeline(crawl: Path, tmp_path: Path):
    blk = tmp_path / "domains"
    blk.write_text("# test list\nbad.com\n")
    out = tmp_path / "out"
    stats = curate([crawl], out, CurateConfig(blocklist=str(blk)), workers=1, progress=False)
    assert stats["documents_in"] == stats["kept"] + stats["removed"] + stats["quarantined"]
    assert stats["documents_in"] == 9 and stats["quarantined"] == 2  # the image and the redirect
    first = stats["steps"][0]
    assert first["name"] == "domain_blocklist"
    assert first["reasons"]["blocklisted_domain"]["documents"] == 3  # news.bad.com, bad.com, www.bad.com
    removed = read_records(out / "removed")
    blocked = sorted(r["meta"]["url"] for r in removed if r["meta"]["reason"] == "blocklisted_domain")
    assert blocked == ["http://news.bad.com/story?id=3", "https://bad.com/", "https://www.bad.com/other"]
    kept = read_records(out / "data")
    assert kept and all(r["meta"]["url"] and r["meta"]["date"].endswith("Z") for r in kept)
    assert all("bad.com" not in r["meta"]["url"].replace("notbad.com", "") for r in kept)
    assert all("<p>" not in r["text"] for r in kept)  # the HTML responses went through extraction


def test_blocklist_config_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="blocklist"):
        validate(CurateConfig(blocklist=str(tmp_path / "missing.txt")))
    with pytest.raises(ConfigError, match=r"steps\[0\]\.file"):
        validate(CurateConfig(steps=[{"type": "domain_blocklist"}]))


def test_cli_warc_with_blocklist(crawl: Path, tmp_path: Path):
    from typer.testing import CliRunner

    from pretrain.cli import app

    blk = tmp_path / "domains"
    blk.write_text("bad.com\n")
    out = tmp_path / "cli"
    res = CliRunner().invoke(app, ["curate", str(crawl), "--out", str(out), "--workers", "1", "--quiet",
                                   "--set", f"data.curate.blocklist={blk}"])
    assert res.exit_code == 0, res.output
    stats = json.loads((out / "stats.json").read_text())
    assert stats["documents_in"] == stats["kept"] + stats["removed"] + stats["quarantined"] == 9
    assert stats["steps"][0]["reasons"]["blocklisted_domain"]["documents"] == 3


def test_quarantined_captures_keep_their_content_block(tmp_path: Path, prose):
    """A capture that is no document keeps its bytes: the HTTP body inline, or for one over the size
    limit the record's offset, whose content block reads back byte for byte (gzip members included)."""
    from pretrain.data.curate.io.payload import payload_bytes

    png, big_body = b"\x89PNG\r\n\x1a\n" + bytes(range(256)), b"<html>" + b"y" * 6000 + b"</html>"
    recs = [warc_record("response", "https://a.org/logo.png", "2024-01-01T00:00:00Z",
                        http_response(png, "image/png"), "application/http", "img"),
            warc_record("response", "https://a.org/gone", "2024-01-01T00:00:01Z",
                        http_response(b"moved", "text/html", "301 Moved Permanently"), "application/http", "301"),
            warc_record("response", "https://a.org/big", "2024-01-01T00:00:02Z",
                        http_response(big_body), "application/http", "big")]
    for name in ("c.warc", "c.warc.gz"):
        write_warc(tmp_path / name, recs)
        items = read([tmp_path / name], max_bytes=4000)
        assert [q.reason for q in items] == ["content type image/png is not HTML or text", "HTTP status 301",
                                             f"record payload too large ({len(big_body)} bytes > 4000)"]
        assert [payload_bytes(q.payload) for q in items] == [png, b"moved", big_body]
        assert "warc_offset" in items[2].payload and items[2].payload["length"] == len(big_body)
        docs = [q.to_document() for q in items]
        assert len({d.id for d in docs}) == 3 and all(d.meta["payload"] for d in docs)
    (tmp_path / "notwarc.warc").write_bytes(b"hello, this is not a WARC file\n")
    [q] = read([tmp_path / "notwarc.warc"])
    assert q.reason.startswith("not a WARC file") and payload_bytes(q.payload) == b"hello, this is not a WARC file\n"
