"""Golden values for every heuristic filter, on small hand-made documents."""

from __future__ import annotations

import pytest

from pretrain.data.curate.rules.c4 import C4Options, c4_clean
from pretrain.data.curate.rules.code_rules import CodeOptions, code_quality
from pretrain.data.curate.rules.fineweb import FineWebOptions, fineweb_quality
from pretrain.data.curate.rules.gopher import (
    GopherQualityOptions,
    GopherRepetitionOptions,
    dup_ngram_char_fraction,
    gopher_quality,
    gopher_repetition,
    top_ngram_char_fraction,
)
from pretrain.data.curate.rules.wordlist import WordListOptions, compile_wordlist, wordlist_check

WORDS = "the farmer and his dog walked along a quiet road towards market".split()


def text_of(n: int, extra: str = "") -> str:
    ws = [WORDS[i % len(WORDS)] for i in range(n)]
    return " ".join(ws) + extra


GQ = GopherQualityOptions()


def reason(verdict):
    return verdict[0] if verdict else None


def test_gopher_word_count_bounds():
    assert reason(gopher_quality(text_of(49), GQ)) == "word_count"
    assert gopher_quality(text_of(50), GQ) is None
    assert reason(gopher_quality(text_of(101), GopherQualityOptions(max_words=100))) == "word_count"


def test_gopher_mean_word_length():
    assert reason(gopher_quality(" ".join(["ab"] * 60 + ["the", "and"]), GQ)) == "mean_word_length"
    long_words = " ".join(["extraordinarily"] * 60 + ["the", "and"])  # mean 14.6
    assert reason(gopher_quality(long_words, GQ)) == "mean_word_length"


def test_gopher_symbol_ratio_threshold_is_strict():
    base = text_of(60)
    assert gopher_quality(base + " #" * 6, GQ) is None
    # 8 '#' words over 68 words = 0.118 > 0.1
    assert reason(gopher_quality(base + " #" * 8, GQ)) == "symbol_word_ratio"
    # '...' counts as a symbol too: 7 ellipses in 60 words = 0.117
    assert reason(gopher_quality(text_of(53) + " wait..." * 7, GQ)) == "symbol_word_ratio"


def test_gopher_bullets_and_ellipsis_lines():
    lines = [f"- {text_of(8)}" for _ in range(10)]
    assert reason(gopher_quality("\n".join(lines), GQ)) == "bullet_lines"  # 10/10 > 0.9
    lines[0] = text_of(8)
    assert gopher_quality("\n".join(lines), GQ) is None  # 9/10 = 0.9 passes
    ell = [text_of(10) + ("..." if i < 4 else ".") for i in range(10)]
    assert reason(gopher_quality("\n".join(ell), GQ)) == "ellipsis_lines"  # 4/10 > 0.3
    ell = [text_of(10) + ("..." if i < 3 else ".") for i in range(10)]
    assert gopher_quality("\n".join(ell), GQ) is None


def test_gopher_alpha_words_and_stop_words():
    # 79 alphabetic words + 21 numbers: 0.79 < 0.8
    assert reason(gopher_quality(text_of(79) + " 1" * 21, GQ)) == "alpha_words"
    assert gopher_quality(text_of(80) + " 1" * 20, GQ) is None
    no_stops = " ".join(["farmer", "walked", "road", "quiet", "market"] * 12)
    assert reason(gopher_quality(no_stops, GQ)) == "stop_words"
    assert gopher_quality(no_stops + " the and", GQ) is None
    # German is judged by the German list, not the English one: English stop words do not save it ...
    assert reason(gopher_quality(no_stops + " the and", GQ, lang="de")) == "stop_words"
    # ... and German ones do (quotes and guillemets around a word do not hide it)
    assert gopher_quality(no_stops + " „die“ und", GQ, lang="de") is None
    assert gopher_quality(no_stops + " «et» le", GQ, lang="fr") is None
    # a language with no list skips the rule; an empty stop_words_langs makes English's apply to it
    assert gopher_quality(no_stops, GQ, lang="fi") is None
    assert reason(gopher_quality(no_stops, GopherQualityOptions(stop_words_langs=[]), lang="fi")) == "stop_words"
    assert gopher_quality(no_stops, GopherQualityOptions(stop_words_by_lang={}), lang="de") is None


def test_ngram_fractions_golden():
    ws = ["a", "b", "c", "d", "e", "a", "b", "c", "d", "e", "x"]
    assert dup_ngram_char_fraction(ws, 5) == pytest.approx(10 / 11)
    assert dup_ngram_char_fraction(ws, 6) == 0.0  # no 6-gram repeats
    assert top_ngram_char_fraction(["ab", "cd", "ab", "cd", "ef"], 2) == pytest.approx(8 / 10)
    assert top_ngram_char_fraction(["ab", "cd", "ef"], 2) == 0.0  # a gram seen once is not "repeated"


def test_gopher_repetition_rules():
    o = GopherRepetitionOptions()
    assert reason(gopher_repetition("x\nx\ny\nz", o)) == "dup_line_chars"  # 1/4 lines, 1/4 chars > 0.2
    assert reason(gopher_repetition("same line\nsame line\nsame line\nother", o)) == "dup_lines"
    paras = "first paragraph here\n\nsecond one\n\nfirst paragraph here\n\nthird\n\nfourth\n\nfifth"
    assert reason(gopher_repetition(paras.replace("\n\n", "\n\n"), GopherRepetitionOptions(
        max_dup_line_fraction=1, max_dup_line_char_fraction=1))) == "dup_paragraph_chars"
    spam = " ".join(["buy cheap"] * 30 + WORDS)
    assert reason(gopher_repetition(spam, o)) == "top_2gram"
    assert gopher_repetition(" ".join(f"w{i}" for i in range(200)), o) is None


def test_c4_line_rules_and_page_rules():
    o = C4Options()
    text = ("Welcome to the site of the village bakery today.\n"
            "Home | About\n"
            "Please enable javascript to see the full menu here.\n"
            "We bake bread every morning with local flour.\n"
            "This website uses cookies to improve your experience.\n"
            "Our cakes are famous in the whole region now!\n"
            "Come and visit us on any day of the week.")
    out, dropped, verdict = c4_clean(text, o)
    assert verdict is None
    assert dropped == 3
    assert "Home" not in out and "javascript" not in out and "cookies" not in out
    assert out.count("\n") == 3
    assert c4_clean("Lorem ipsum dolor sit amet, it says here.", o)[2][0] == "lorem_ipsum"
    assert c4_clean("function f() { return 1; } is code that we saw.", o)[2][0] == "curly_bracket"
    # as in the C4 reference, braces only in lines the line rules drop do not drop the page
    page = "if (x) {\nThe river runs south to the sea. It floods every spring. Farmers plant after it.\n}"
    assert c4_clean(page, C4Options(min_sentences=3))[2] is None
    assert c4_clean("Only one good sentence is on this page.", o)[2][0] == "too_few_sentences"


def test_fineweb_rules():
    o = FineWebOptions()
    no_punct = "\n".join(f"menu item number {i} of the navigation bar" for i in range(10))
    assert reason(fineweb_quality(no_punct, o)) == "punct_lines"
    dup = "\n".join(["A long sentence that ends properly with a period."] * 3 + ["Another line."])
    assert reason(fineweb_quality(dup, o)) == "dup_line_chars"
    short = "\n".join(["Short one."] * 1 + [f"Tiny {i}." for i in range(7)] + ["A much longer line that is clearly over thirty characters."] * 1)
    assert reason(fineweb_quality(short, o)) == "short_lines"
    good = "\n".join(f"This is sentence number {i} of a perfectly ordinary paragraph." for i in range(5))
    assert fineweb_quality(good, o) is None


def test_code_rules():
    o = CodeOptions()
    assert code_quality("def f():\n    return 1\n", o) is None
    assert reason(code_quality("x = '" + "a" * 1001 + "'\n", o)) == "max_line_length"
    assert reason(code_quality("\n".join(["x = " + "1" * 150] * 3), o)) == "mean_line_length"
    assert reason(code_quality("{}[]()::;;\n" * 5, o)) == "alnum_fraction"
    assert reason(code_quality("# Code generated by protoc. DO NOT EDIT.\nx = 1\n", o)) == "auto_generated"
    # a marker far below the header is not a generated-file header
    assert code_quality("x = 1\n" * 10 + "# generated by hand\n", o) is None


def test_wordlist_counts_whole_words():
    o = WordListOptions(words=["spam", "bad phrase"], max_ratio=0.1)
    pat = compile_wordlist(o)
    count, verdict = wordlist_check("spam spam and a bad phrase in spamming text here ok", pat, o)
    assert count == 3  # 'spamming' is not a whole-word match
    assert verdict[0] == "ratio"  # 3 matches / 11 words = 0.27 > 0.1
    count, verdict = wordlist_check(" ".join(["fine"] * 40) + " spam", pat, o)
    assert (count, verdict) == (1, None)  # 1 / 41 < 0.1
    with pytest.raises(ValueError):
        compile_wordlist(WordListOptions())
