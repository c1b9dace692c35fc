"""Multilingual correctness: English-calibrated rules (C4 lines, Gopher word bounds) must not eat
Japanese or German pages, CJK sentence endings count as sentence endings, and the language label is
recomputed when a step rewrote the text."""

from __future__ import annotations

from pathlib import Path

from curate_helpers import read_records

from pretrain.data.curate import CurateConfig, curate
from pretrain.data.curate.rules.c4 import C4Options, c4_clean
from pretrain.data.curate.rules.fineweb import FineWebOptions, fineweb_quality
from pretrain.data.curate.rules.gopher import GopherQualityOptions, gopher_quality

JA = [
    "京都は千年以上にわたって日本の都であり、今も多くの寺院や神社が残っています。",
    "春になると、鴨川の土手には桜が咲き、夜遅くまで花見を楽しむ人々でにぎわいます。",
    "祇園祭は七月に一か月をかけて行われ、山鉾巡行の日には通りが見物客でいっぱいになります。",
    "市内の移動にはバスが便利ですが、観光の季節には道路が混雑するので、地下鉄や自転車を使う人も多いです。",
    "錦市場では漬物や湯葉、川魚など、京都ならではの食材を売る店が細い通りに並んでいます。",
    "秋の紅葉の時期には、東福寺や永観堂の庭園が赤や黄色に染まり、写真を撮る人が絶えません！",
    "伝統的な町家を改装した宿に泊まれば、古い木の香りと静かな中庭を味わうことができます。",
    "嵐山の竹林の小道を朝早く歩くと、風が竹の葉を揺らす音だけが聞こえてきます。",
    "京都の料理は薄味で、季節の野菜や豆腐を丁寧に調理したものが中心です。",
    "旅の終わりには、抹茶と和菓子を味わいながら、その日に見た景色を思い出してみてはいかがでしょうか？",
]
DE = [
    "Die Stadt Freiburg liegt am westlichen Rand des Schwarzwaldes und gilt als eine der sonnigsten Städte Deutschlands.",
    "Ihr Münster wurde über mehr als dreihundert Jahre gebaut und prägt bis heute das Bild der Altstadt.",
    "Durch viele Straßen fließen kleine Wasserläufe, die Bächle genannt werden und im Sommer für Abkühlung sorgen.",
    "Auf dem Markt rund um das Münster verkaufen Bauern aus der Umgebung jeden Morgen Obst, Gemüse und Blumen.",
    "Die Universität wurde im Jahr 1457 gegründet und zählt zu den ältesten Hochschulen des Landes.",
    "Wer mit der Seilbahn auf den Schauinsland fährt, kann bei klarem Wetter bis zu den Alpen blicken.",
    "Im Stadtteil Vauban wohnen viele Familien ohne eigenes Auto, weil Straßenbahn und Radwege gut ausgebaut sind.",
    "Am Abend treffen sich Studenten und Touristen in den Gaststätten der Altstadt, um den regionalen Wein zu probieren.",
]


def html(title: str, sentences: list[str], lang: str) -> str:
    paras = "".join(f"<p>{' '.join(sentences[i:i + 2])}</p>\n" for i in range(0, len(sentences), 2))
    return (f"<!DOCTYPE html><html lang='{lang}'><head><title>{title}</title></head><body>"
            f"<nav><a href='/'>Start</a> | <a href='/kontakt'>Kontakt</a></nav>"
            f"<article><h1>{title}</h1>\n{paras}</article><footer>© 2024</footer></body></html>")


def test_japanese_and_german_pages_keep_sentences_and_labels(tmp_path: Path, prose):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "kyoto.html").write_text(html("京都の四季", JA, "ja"), encoding="utf-8")
    (raw / "freiburg.html").write_text(html("Freiburg im Breisgau", DE, "de"), encoding="utf-8")
    (raw / "english.html").write_text(html("River", [prose(3, 12)], "en"), encoding="utf-8")
    stats = curate([raw], tmp_path / "out", CurateConfig(), workers=1, progress=False)
    assert stats["documents_in"] == stats["kept"] + stats["removed"] + stats["quarantined"] == 3
    kept = {Path(r["source"]).name: r for r in read_records(tmp_path / "out" / "data")}
    assert set(kept) == {"kyoto.html", "freiburg.html", "english.html"}, stats["samples"]
    ja, de = kept["kyoto.html"], kept["freiburg.html"]
    assert ja["lang"] == "ja" and de["lang"] == "de" and kept["english.html"]["lang"] == "en"
    assert all(s in ja["text"] for s in JA), ja["text"]
    assert all(s in de["text"] for s in DE), de["text"]


def test_cjk_sentence_endings_are_terminal():
    text = "\n".join(JA)
    cleaned, dropped, verdict = c4_clean(text, C4Options(min_words_per_line=0))
    assert verdict is None and dropped == 0 and cleaned == text
    assert fineweb_quality(text, FineWebOptions()) is None


def test_gopher_counts_words_of_unsegmented_languages():
    text = "".join(JA)
    assert gopher_quality(text, GopherQualityOptions(), "ja") is None
    # the same rules still reject a short Japanese page, and English keeps its word bounds
    assert gopher_quality(JA[0], GopherQualityOptions(), "ja")[0] == "word_count"
    assert gopher_quality(text, GopherQualityOptions(), "en")[0] == "word_count"


def test_language_relabelled_after_c4_rewrite(tmp_path: Path, prose):
    # an English page whose Japanese lines C4 (applied to every language here) drops: the label follows
    page = "\n".join([JA[0] + JA[1] + JA[2] + JA[3], JA[4] + JA[5] + JA[6], prose(5, 8), prose(6, 8)])
    (tmp_path / "mixed.txt").write_text(page, encoding="utf-8")
    steps = [{"type": "langid"}, {"type": "c4", "languages": [], "min_words_per_line": 5}]
    stats = curate([tmp_path / "mixed.txt"], tmp_path / "out", CurateConfig(steps=steps), workers=1, progress=False)
    assert stats["kept"] == 1
    (doc,) = read_records(tmp_path / "out" / "data")
    assert "京都" not in doc["text"] and doc["lang"] == "en" and doc["meta"]["lang_relabelled_from"] == "ja"
