"""Degenerate preference pairs: two sides that carry no preference signal between them, flagged only on evidence.

A pair teaches a reward model or DPO nothing (or something wrong: "prefer the longer of two equal texts", "prefer
the answer that was not cut off") when one side is empty, both sides are the same text, or one side was cut off.
Each such pair gets one row with the first reason that applies, in this order, the side it is about and the
evidence in words:

- ``empty``: a side is empty or whitespace-only (similarity 0.0; both empty counts here too).
- ``identical``: the two texts are equal **exactly**, after removing trailing whitespace only (a trailing newline is
  a serialisation artefact; everything else -- leading whitespace, case, punctuation -- counts). Similarity 1.0.
- ``truncation``: a side shows evidence of a cut, never shortness alone (a one-word answer to "answer in one word"
  is a complete answer, and so is "Yes." next to a long answer). The evidence, any of:

  - the data says so: a finish reason ``length`` (or ``max_tokens``) in the optional ``<column>_finish_reason``
    columns (see ``finish_reason_columns``);
  - an unclosed code block: an odd number of ````` fences;
  - an unclosed bracket or quote at the end: the text stops (not on ``.``, ``!``, ``?`` or a fence) while a ``(``,
    ``[`` or ``{`` opened in its last 200 characters is still open, or inside a double quote opened on its last
    line (smileys such as ``:(`` are not brackets);
  - the short side is the long one cut inside a word: its stripped text is a strict prefix (at least
    ``min_prefix_chars`` long) of the other's and the cut falls inside a word (``'Par'`` / ``'Paris.'``). A prefix
    that ends at a word boundary (``'Paris'`` / ``'Paris is the capital.'``) is a short answer, and one the other
    side only inflects (``'Restaurant'`` / ``'Restaurants'``) a different answer: neither is a cut;
  - the text ends mid-sentence where the other side does not (the rule fires on one side only): at least
    ``min_words`` words, no closing punctuation, and it stops

    - right after a connector (:data:`CONNECTORS`: ``and``, ``the``, ``of``, ``to`` ...), lower case -- except a
      copula after a pronoun inside a sentence (``how important it is``) and ``with``/``from`` closing a
      question that lost its ``?`` (``anything else I can help you with``);
    - after a comma, unless the last line is a short sign-off (``Best,``);
    - inside a word: the last word (3+ letters, a script that separates words by spaces, not in a URL or path)
      is a strict prefix of a longer word written earlier in the same text, not merely inflected
      (``thanksgi`` / ``thanksgiving``; ``zombie`` / ``zombies`` is no cut), and it never occurs whole
      elsewhere in the pair.

  A colon at the end (``Here is a picture:``) is not counted: models end turns that way, and raters judge it.
  ``side`` names the cut side (its column name, or ``both``). Similarity is the length ratio
  2·len(short) / (len(a) + len(b)) of the stripped texts, what difflib gives a prefix.
- ``near_identical`` (only with ``near_identical=True``; off by default, policy
  ``curation.degenerate_near_identical``): the texts differ only in letter case, whitespace or quote style --
  equal after :func:`normalise` (NFKC, lower case, curly quotes as straight ones, whitespace runs as one space,
  trimmed). Punctuation, digits and symbols still count (``-5`` / ``5`` and ``$8,000`` / ``$4000`` are different
  answers). With ``near_threshold`` below 1.0 (policy ``curation.degenerate_near_threshold``) a pair is also
  near-identical when the character similarity of the normalised texts reaches it (``char_similarity``: difflib's
  ratio after trimming the common prefix and suffix, ``autojunk=False``); a one-word edit can flip a fact, so
  lowering it drops real pairs.

Case-only or whitespace-only differences are never ``identical``: "Paris" and "paris" may carry a preference (style,
a proper noun), and by default such a pair stays. The rules were checked by reading every flag they raise on the
pair sets of ``shared/data`` (``tests/unit/fixtures/degenerate_reviewed.json``, ``benchmarks/README.md``). Pass the
responses, not prompt + response: two dialogues that share a long context look alike whatever their last turns say.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

import polars as pl

REASONS = ("empty", "identical", "truncation", "near_identical")
_SCHEMA = {
    "pair_id": pl.String,
    "reason": pl.String,
    "similarity": pl.Float64,
    "side": pl.String,
    "evidence": pl.String,
}

# Invisible characters some models emit at the end of a text: stripped with the trailing whitespace.
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"
# Words after which an English sentence does not end: articles, coordinating conjunctions, prepositions that always
# take an object, possessives, "very" and the copulas (not after a pronoun, see _PRONOUNS). Ambiguous ones ("in",
# "on", "so", "that", "for", "about", "such") are left out.
CONNECTORS = frozenset(
    {"a", "an", "the", "and", "or", "but", "nor", "of", "to", "with", "from", "into", "onto", "than", "because"}
    | {"whether", "although", "my", "your", "our", "their", "its", "very", "is", "are", "was", "were"}
)
# Endings that make a whole word longer (inflections, common derivations): "zombie" is not "zombies" cut short.
_SUFFIXES = frozenset(
    {"es", "ed", "er", "ers", "est", "ly", "en", "ing", "ings", "ies", "ied", "al", "ally", "ness", "ment", "ments"}
    | {"ful", "less", "able", "ity", "ous", "ion", "ions", "ation", "ations", "ism", "ist", "ists", "ize", "ized"}
)
# The other side going on with one of these made the same word plural or past ("Restaurant" / "Restaurants").
_INFLECTIONS = frozenset({"s", "es", "'s", "d", "ed", "ing", "ly"})
# Whole words that begin many longer ones ("through" / "throughout"): never read as a cut word.
_COMPLETE = frozenset(
    {"all", "and", "any", "can", "car", "day", "for", "her", "him", "his", "man", "may", "not", "one", "our", "out"}
    | {"own", "per", "pro", "the", "use", "way", "you", "after", "every", "here", "home", "other", "over", "part"}
    | {"some", "them", "then", "there", "these", "through", "time", "under", "what", "when", "where", "with", "work"}
)
_CLOSERS = set(".!?…。！？)]}\"'”’`*>|")  # an ending with one of these is a finished sentence for the ending rule
_TAIL_CHARS = 200  # an unclosed bracket counts when it was opened this close to the end
_SIGN_OFF_WORDS = 3  # a last line of at most this many words ending with "," is a sign-off ("Best,")
_WORD = re.compile(r"[^\W_]+")
_FENCE = "```"
_LENGTH_FINISH = frozenset({"length", "max_tokens"})  # OpenAI-style finish_reason, Anthropic-style stop_reason
_SPACED_SCRIPTS = 0x0530  # Latin, Greek, Cyrillic: words are delimited by spaces, so a word can be cut
_PAIRS = {")": "(", "]": "[", "}": "{"}
_SMILEY = re.compile(r"(?<!\S)[:;=]-?[()]")  # ":(" or ";-)" standing alone, not "path[1:]" or "x=(1)"
# A last sentence that starts like a question may end on one of these ("what can I help you with"): not a cut.
_STRANDED = frozenset({"with", "from"})
_QUESTION_START = frozenset(
    {"what", "where", "who", "whom", "which", "how", "is", "are", "was", "were", "do", "does", "did", "can", "could"}
    | {"would", "will", "should", "anything"}
)
_COPULAS = frozenset({"is", "are", "was", "were"})
# After one of these, a copula ends a clause ("how important it is", "who you are") unless it opens the sentence.
_PRONOUNS = frozenset({"it", "they", "you", "we", "he", "she", "i", "this", "that", "what", "who", "which"})


def normalise(text: pl.Expr) -> pl.Expr:
    """NFKC, lower case, curly quotes as straight, runs of whitespace as one space, trimmed (near-identical test)."""
    return (
        text.fill_null("")
        .str.normalize("NFKC")
        .str.to_lowercase()
        .str.replace_all(r"[\u2018\u2019\u201a\u201b\u2032]", "'")
        .str.replace_all(r"[\u201c\u201d\u201e\u201f\u2033]", '"')
        .str.replace_all(rf"[\s{_INVISIBLE}]+", " ")
        .str.strip_chars()
    )


def _strip_end(text: str) -> str:
    return text.rstrip().rstrip(_INVISIBLE).rstrip()


def _excerpt(text: str, width: int = 40) -> str:
    """The last ``width`` characters of text, one line, with '...' when cut."""
    tail = text[-width:].replace("\n", "\\n")
    return tail if len(text) <= width else "..." + tail


def _unclosed_bracket(text: str) -> str | None:
    """Evidence that text stops inside an open bracket or a double quote opened on its last line."""
    if text[-1] in ".!?`":
        return None
    stack: list[tuple[str, int]] = []
    for match in re.finditer(r"[()\[\]{}]", _SMILEY.sub("  ", text)):
        char = match.group()
        if char in "([{":
            stack.append((char, match.start()))
        elif stack and stack[-1][0] == _PAIRS[char]:
            stack.pop()
    if stack and len(text) - stack[-1][1] <= _TAIL_CHARS:
        char, start = stack[-1]
        return f"unclosed '{char}' at the end: '{_excerpt(text[start:], 50)}'"
    last_line = text.rsplit("\n", 1)[-1]
    if text[-1] in _CLOSERS:
        return None
    if last_line.count('"') % 2 or last_line.count("\u201c") > last_line.count("\u201d"):
        start = max(last_line.rfind('"'), last_line.rfind("\u201c"))
        if start >= 0 and len(last_line) - start > 1:
            return f"unclosed quote at the end: '{_excerpt(last_line[start:], 50)}'"
    return None


def _ending(text: str, other: str, min_words: int) -> str | None:
    """Evidence that text stops mid-sentence (see the module docstring), or None; other is the pair's other side."""
    last = text[-1]
    if last in _CLOSERS or len(text.split()) < min_words:
        return None
    last_line = text.rsplit("\n", 1)[-1].strip()
    if last == ",":
        if len(last_line.split()) <= _SIGN_OFF_WORDS:
            return None
        return f"ends after ',': '{_excerpt(text)}'"
    if not last.isalnum():
        return None
    tokens = _WORD.findall(text[-60:])
    if not tokens:
        return None
    token = tokens[-1]
    if token in CONNECTORS:  # lower case only: "Plan A", "Vitamin A" end a sentence
        sentence = _WORD.findall(re.split(r"[.!?\n]", text)[-1].lower())
        if len(sentence) >= 3 and token in _COPULAS and sentence[-2] in _PRONOUNS:
            return None  # "how important it is", "who you are"; "It is" opening a sentence stays a cut
        if sentence and sentence[0] in _QUESTION_START and token in _STRANDED:
            return None  # "is there anything else I can help you with", a question without its "?"
        return f"ends after the connector '{token}': '{_excerpt(text)}'"
    key = token.lower()
    if len(key) < 3 or not key.isalpha() or key in _COMPLETE or any(ord(c) >= _SPACED_SCRIPTS for c in key):
        return None
    if any(c in text.rsplit(None, 1)[-1] for c in "/_@=.:\\"):  # a URL, path or identifier ends where it likes
        return None
    own = _WORD.findall(text.lower())
    if own.count(key) > 1 or key in _WORD.findall(other.lower()):
        return None  # written whole elsewhere in the pair: a word, not a cut
    # the cut word was written whole earlier in the same text, and not as an inflection of the last word
    longer = sorted({w for w in own if len(w) >= len(key) + 2 and w.startswith(key) and w[len(key) :] not in _SUFFIXES})
    if longer:
        return f"ends mid-word: '{_excerpt(text)}' ('{longer[0]}' occurs earlier)"
    return None


def _word_at(text: str, pos: int) -> str:
    """The run of letters and digits of text around position pos."""
    start, end = pos, pos
    while start > 0 and text[start - 1].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum():
        end += 1
    return text[start:end]


def truncation_evidence(
    a: str,
    b: str,
    *,
    finish_a: str | None = None,
    finish_b: str | None = None,
    min_words: int = 5,
    min_prefix_chars: int = 1,
) -> tuple[str | None, str | None]:
    """``(evidence for a, evidence for b)``: why each side looks cut off, ``None`` where nothing shows a cut.

    ``a`` and ``b`` are the two non-empty responses of a pair; ``finish_*`` the generator's finish reasons when the
    data carries them. Each evidence string lists every rule that fired, separated by ``'; '``.
    """
    texts = (_strip_end(a), _strip_end(b))
    found: list[list[str]] = [[], []]
    for i, finish in enumerate((finish_a, finish_b)):
        if finish is not None and finish.strip().lower() in _LENGTH_FINISH:
            found[i].append(f"finish_reason '{finish.strip()}'")
        fences = texts[i].count(_FENCE)
        if fences % 2:
            found[i].append(f"unclosed code block ({fences} fences)")
        if texts[i] and (bracket := _unclosed_bracket(texts[i])):
            found[i].append(bracket)
    short_i = 0 if len(texts[0].strip()) < len(texts[1].strip()) else 1
    short, long_ = texts[short_i].strip(), texts[1 - short_i].strip()
    if len(short) >= max(min_prefix_chars, 1) and len(short) < len(long_) and long_.startswith(short):
        whole = _word_at(long_, len(short))
        rest = whole[len(_word_at(short, len(short))) :]
        if short[-1].isalnum() and rest and rest.lower() not in _INFLECTIONS:
            found[short_i].append(f"ends mid-word: '{_excerpt(short)}' (the other side goes on: '{whole}')")
    if texts[0] and texts[1]:
        ends = [_ending(texts[0], texts[1], min_words), _ending(texts[1], texts[0], min_words)]
        for i in (0, 1):
            if ends[i] and not ends[1 - i]:
                found[i].append(ends[i])  # type: ignore[arg-type]
    evidence_a, evidence_b = ("; ".join(dict.fromkeys(f)) or None for f in found)
    return evidence_a, evidence_b


def _common_prefix(a: str, b: str) -> int:
    """Length of the common prefix of a and b (binary search on slices: C-speed compares)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def char_similarity(a: str, b: str, threshold: float = 0.0) -> float | None:
    """Character ratio 2M / (len(a) + len(b)) of a and b, or None when it is below ``threshold``.

    M = common prefix + common suffix + difflib's matching characters between the two middles (``autojunk=False``).
    Trimming the shared ends first is the usual diff speed-up: shared dialogue context or boilerplate costs a slice
    compare instead of difflib's quadratic work. Upper bounds (lengths, then ``quick_ratio``) skip hopeless pairs.
    """
    total = len(a) + len(b)
    if total == 0:
        return 1.0
    head = _common_prefix(a, b)
    tail = _common_prefix(a[head:][::-1], b[head:][::-1])
    mid_a, mid_b = a[head : len(a) - tail], b[head : len(b) - tail]
    bound = 2 * (head + tail + min(len(mid_a), len(mid_b))) / total
    if bound < threshold:
        return None
    if not mid_a or not mid_b:
        return bound
    matcher = SequenceMatcher(None, mid_a, mid_b, autojunk=False)
    quick = matcher.quick_ratio() * (len(mid_a) + len(mid_b)) / 2
    if 2 * (head + tail + quick) / total < threshold:
        return None
    matched = sum(block.size for block in matcher.get_matching_blocks())
    ratio = 2 * (head + tail + matched) / total
    return ratio if ratio >= threshold else None


def _first_difference(a: str, b: str) -> str:
    at = _common_prefix(a, b)
    start = max(at - 15, 0)
    return f"{a[start : at + 15]!r} vs {b[start : at + 15]!r}"


def degenerate_pairs(
    pairs: pl.DataFrame,
    *,
    columns: tuple[str, str] = ("response_a", "response_b"),
    id_column: str = "pair_id",
    near_threshold: float = 1.0,
    min_prefix_chars: int = 1,
    near_identical: bool = False,
    min_words: int = 5,
    finish_reason_columns: tuple[str, str] | None = None,
) -> pl.DataFrame:
    """``pair_id, reason, similarity, side, evidence`` for every degenerate pair (module docstring), by pair_id.

    ``columns`` names the two sides (``("chosen", "rejected")`` for a preference set); ``id_column`` the key, which
    comes back as ``pair_id`` whatever its name. ``side`` is the column name of the side the reason is about
    (``both`` when it is about the pair). ``finish_reason_columns`` names the generators' finish reasons; by default
    ``<column>_finish_reason`` is used where the frame has it. ``near_identical`` turns the near-identical reason on
    and ``near_threshold`` sets it (1.0: equal after :func:`normalise`). Pairs that are not degenerate are not
    returned.
    """
    a_col, b_col = columns
    if finish_reason_columns is None:
        finish_reason_columns = (f"{a_col}_finish_reason", f"{b_col}_finish_reason")
    finish_cols = [
        pl.col(c).cast(pl.String) if c in pairs.columns else pl.lit(None, dtype=pl.String)
        for c in finish_reason_columns
    ]
    frame = pairs.select(
        pl.col(id_column).cast(pl.String).alias("pair_id"),
        pl.col(a_col).cast(pl.String).fill_null("").alias("_a"),
        pl.col(b_col).cast(pl.String).fill_null("").alias("_b"),
        finish_cols[0].alias("_fa"),
        finish_cols[1].alias("_fb"),
    )
    rows: list[tuple[str, str, float, str, str]] = []
    for pair_id, a, b, fa, fb in frame.iter_rows():
        row = _classify(
            a,
            b,
            fa,
            fb,
            columns=columns,
            min_words=min_words,
            min_prefix_chars=min_prefix_chars,
        )
        if row is not None:
            rows.append((pair_id, *row))
    out = pl.DataFrame(rows, schema=_SCHEMA, orient="row")
    if near_identical:
        decided = set(out["pair_id"].to_list())
        undecided = frame.filter(~pl.col("pair_id").is_in(list(decided))).with_columns(
            normalise(pl.col("_a")).alias("_na"), normalise(pl.col("_b")).alias("_nb")
        )
        near: list[tuple[str, str, float, str, str]] = []
        short = pl.min_horizontal(pl.col("_na").str.len_chars(), pl.col("_nb").str.len_chars())
        bound = 2 * short / (pl.col("_na").str.len_chars() + pl.col("_nb").str.len_chars())
        candidates = undecided.filter(bound >= near_threshold)
        for pair_id, a, b, na, nb in candidates.select("pair_id", "_a", "_b", "_na", "_nb").iter_rows():
            if na == nb:
                near.append(
                    (
                        pair_id,
                        "near_identical",
                        1.0,
                        "both",
                        "differ only in case, whitespace or quote style: " + _first_difference(a, b),
                    )
                )
            elif near_threshold < 1.0 and (ratio := char_similarity(na, nb, near_threshold)) is not None:
                near.append(
                    (
                        pair_id,
                        "near_identical",
                        ratio,
                        "both",
                        f"normalised character similarity {ratio:.3f} >= "
                        f"{near_threshold}: " + _first_difference(na, nb),
                    )
                )
        out = pl.concat([out, pl.DataFrame(near, schema=_SCHEMA, orient="row")])
    return out.sort("pair_id")


def _classify(
    a: str,
    b: str,
    finish_a: str | None,
    finish_b: str | None,
    *,
    columns: tuple[str, str],
    min_words: int,
    min_prefix_chars: int,
) -> tuple[str, float, str, str] | None:
    """``(reason, similarity, side, evidence)`` for one pair, or None (near-identical is decided by the caller)."""
    empty = [not a.strip(), not b.strip()]
    if any(empty):
        side = "both" if all(empty) else columns[empty.index(True)]
        return "empty", 0.0, side, f"{side} is empty or whitespace-only" if side != "both" else "both sides are empty"
    if a.rstrip() == b.rstrip():
        return "identical", 1.0, "both", f"equal texts (up to trailing whitespace): '{_excerpt(a.rstrip())}'"
    ev_a, ev_b = truncation_evidence(
        a, b, finish_a=finish_a, finish_b=finish_b, min_words=min_words, min_prefix_chars=min_prefix_chars
    )
    if ev_a is None and ev_b is None:
        return None
    sa, sb = len(a.strip()), len(b.strip())
    similarity = 2 * min(sa, sb) / (sa + sb)
    if ev_a is not None and ev_b is not None:
        return "truncation", similarity, "both", f"{columns[0]}: {ev_a} | {columns[1]}: {ev_b}"
    side, ev = (columns[0], ev_a) if ev_a is not None else (columns[1], ev_b)
    return "truncation", similarity, side, f"{side}: {ev}"
