"""The incremental word count equals str.split()'s count after any sequence of edits."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from storyterm.story.word_count import WordCounter

# Whitespace of every kind str.split() knows, so a cached line count can never disagree with it.
TEXT = st.text(alphabet=st.sampled_from(list("ab é\n\t\r\x0b\x0c\u2028\u3000\x85.")), max_size=60)


@given(st.lists(TEXT, min_size=1, max_size=8))
def test_the_count_matches_split_after_every_edit(texts: list[str]) -> None:
    counter = WordCounter()
    for text in texts:
        assert counter.count(text) == len(text.split())


def test_an_edit_recounts_only_the_lines_that_changed(monkeypatch) -> None:
    from storyterm.story import word_count

    counted: list[str] = []
    monkeypatch.setattr(word_count, "words_in", lambda line: counted.append(line) or len(line.split()))
    counter = WordCounter()
    story = "\n".join(f"line {n} has five words" for n in range(1000))
    assert counter.count(story) == 5000
    counted.clear()
    assert counter.count(story + " and more") == 5002
    assert counted == ["line 999 has five words and more"]
