"""Word-list filter (blocked words)."""

from __future__ import annotations

from pretrain.configlib import check
from pretrain.data.curate.registry import Step, Verdict, register
from pretrain.data.curate.rules import wordlist
from pretrain.data.record import Document


@register("wordlist")
class WordList(Step):
    Options = wordlist.WordListOptions

    def validate(self) -> None:
        check(bool(self.o.words or self.o.words_file), "words", "give `words` or `words_file`")

    def setup(self) -> None:
        self.pattern = wordlist.compile_wordlist(self.o)

    def __call__(self, doc: Document) -> Verdict | None:
        count, verdict = wordlist.wordlist_check(doc.text, self.pattern, self.o)
        if count:
            doc.meta["wordlist_count"] = count
        return verdict

