"""What related news reads of an article: its terms (lowercase, plurals folded, no stop words).

Counting is per article and needs nothing else, so the build runs it in its
workers, next to Markdown, and the index keeps the counts between builds.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from publisher.models import Article

TOKEN = r"(?u)\b[^\W\d_][\w'-]*[^\W_]\b"
_TOKEN = re.compile(TOKEN)
# scikit-learn's English stop words (its ENGLISH_STOP_WORDS), copied: importing scikit-learn for
# a word list cost 0.7 s at every start of the CLI.
# fmt: off
STOP_WORDS = frozenset((
    'a', 'about', 'above', 'across', 'after', 'afterwards', 'again', 'against', 'all', 'almost',
    'alone', 'along', 'already', 'also', 'although', 'always', 'am', 'among', 'amongst', 'amoungst',
    'amount', 'an', 'and', 'another', 'any', 'anyhow', 'anyone', 'anything', 'anyway', 'anywhere',
    'are', 'around', 'as', 'at', 'back', 'be', 'became', 'because', 'become', 'becomes', 'becoming',
    'been', 'before', 'beforehand', 'behind', 'being', 'below', 'beside', 'besides', 'between',
    'beyond', 'bill', 'both', 'bottom', 'but', 'by', 'call', 'can', 'cannot', 'cant', 'co', 'con',
    'could', 'couldnt', 'cry', 'de', 'describe', 'detail', 'do', 'done', 'down', 'due', 'during',
    'each', 'eg', 'eight', 'either', 'eleven', 'else', 'elsewhere', 'empty', 'enough', 'etc', 'even',
    'ever', 'every', 'everyone', 'everything', 'everywhere', 'except', 'few', 'fifteen', 'fifty',
    'fill', 'find', 'fire', 'first', 'five', 'for', 'former', 'formerly', 'forty', 'found', 'four',
    'from', 'front', 'full', 'further', 'get', 'give', 'go', 'had', 'has', 'hasnt', 'have', 'he',
    'hence', 'her', 'here', 'hereafter', 'hereby', 'herein', 'hereupon', 'hers', 'herself', 'him',
    'himself', 'his', 'how', 'however', 'hundred', 'i', 'ie', 'if', 'in', 'inc', 'indeed', 'interest',
    'into', 'is', 'it', 'its', 'itself', 'keep', 'last', 'latter', 'latterly', 'least', 'less', 'ltd',
    'made', 'many', 'may', 'me', 'meanwhile', 'might', 'mill', 'mine', 'more', 'moreover', 'most',
    'mostly', 'move', 'much', 'must', 'my', 'myself', 'name', 'namely', 'neither', 'never',
    'nevertheless', 'next', 'nine', 'no', 'nobody', 'none', 'noone', 'nor', 'not', 'nothing', 'now',
    'nowhere', 'of', 'off', 'often', 'on', 'once', 'one', 'only', 'onto', 'or', 'other', 'others',
    'otherwise', 'our', 'ours', 'ourselves', 'out', 'over', 'own', 'part', 'per', 'perhaps', 'please',
    'put', 'rather', 're', 'same', 'see', 'seem', 'seemed', 'seeming', 'seems', 'serious', 'several',
    'she', 'should', 'show', 'side', 'since', 'sincere', 'six', 'sixty', 'so', 'some', 'somehow',
    'someone', 'something', 'sometime', 'sometimes', 'somewhere', 'still', 'such', 'system', 'take',
    'ten', 'than', 'that', 'the', 'their', 'them', 'themselves', 'then', 'thence', 'there',
    'thereafter', 'thereby', 'therefore', 'therein', 'thereupon', 'these', 'they', 'thick', 'thin',
    'third', 'this', 'those', 'though', 'three', 'through', 'throughout', 'thru', 'thus', 'to',
    'together', 'too', 'top', 'toward', 'towards', 'twelve', 'twenty', 'two', 'un', 'under', 'until',
    'up', 'upon', 'us', 'very', 'via', 'was', 'we', 'well', 'were', 'what', 'whatever', 'when',
    'whence', 'whenever', 'where', 'whereafter', 'whereas', 'whereby', 'wherein', 'whereupon',
    'wherever', 'whether', 'which', 'while', 'whither', 'who', 'whoever', 'whole', 'whom', 'whose',
    'why', 'will', 'with', 'within', 'without', 'would', 'yet', 'you', 'your', 'yours', 'yourself',
    'yourselves',
))
# fmt: on
_KEEP_S = frozenset(
    [
        "news",
        "series",
        "species",
        "physics",
        "politics",
        "economics",
        "mathematics",
        "statistics",
        "analysis",
        "crisis",
        "basis",
        "thesis",
        "status",
        "bus",
        "gas",
        "lens",
        "chaos",
        "atlas",
        "alias",
        "bias",
        "diabetes",
        "aids",
    ]
)
# One article's terms: (terms in alphabetical order, counts, capitalised counts).
DocTerms = tuple[tuple[str, ...], np.ndarray, np.ndarray]


@dataclass(frozen=True)
class RelatedParams:
    """The knobs; defaults are the values bench/related.py picked on held-out rows."""

    title_repeat: int = 2
    proper_weight: float = 0.5  # weight of terms that are capitalised in most of their uses
    proper_share: float = 0.5  # "most": the share of capitalised uses that makes a proper noun
    tag_weight: float = 0.25
    recency_weight: float = 0.1  # how much of the score a large gap in time can take away
    half_life_days: float = 30.0  # gap at which half of that is taken
    min_score: float = 0.05
    max_df: float = 0.5
    min_df: int = 2
    slack: int = 8  # candidates kept beyond k, so an edit rarely forces a row to be rescored
    chunk: int = 512  # rows scored at once (bounds memory on big archives)


DEFAULT = RelatedParams()


def doc_key(a: Article) -> str:
    """A hash of what the model reads of an article: if this is unchanged, so is its row."""
    text = "\0".join([a.title, a.body, a.date.isoformat(), ",".join(sorted(a.tags))])
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


@lru_cache(maxsize=1 << 18)
def _term(token: str) -> str | None:
    """The counted form of a token (lowercase, plural folded), or None for a stop word."""
    word = token.lower()
    if word in STOP_WORDS:
        return None
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) > 3 and word not in _KEEP_S:
        if word.endswith("ies") and len(word) > 4:
            word = word[:-3] + "y"
        elif word.endswith("sses"):
            word = word[:-2]
        elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
            word = word[:-1]
    return None if word in STOP_WORDS or len(word) < 2 else word


_PIECES: dict[str, tuple[tuple[str, bool], ...]] = {}  # see _piece_terms
_PIECES_MAX = 1 << 18


def _piece_terms(piece: str) -> tuple[tuple[str, bool], ...]:
    """(term, capitalised) of each token in one whitespace-free piece of text, in order.

    ``TOKEN`` matches only word characters, apostrophes and hyphens, and its word
    boundaries look only at neighbours, which across whitespace are never word
    characters: so a text's tokens are exactly its pieces' (``str.split``) tokens. Pieces
    (``"Kostov's"``, ``"(Reuters)."``) recur, so each is tokenised once: counting an
    article costs a third less than running the pattern over the whole text.
    """
    out = []
    for token in _TOKEN.findall(piece):
        term = _term(token)
        if term is not None:
            out.append((term, token[0].isupper()))
    if len(_PIECES) >= _PIECES_MAX:
        _PIECES.clear()
    found = _PIECES[piece] = tuple(out)
    return found


def doc_terms(a: Article, params: RelatedParams = DEFAULT) -> DocTerms:
    """Count one article's terms (cheap and per article: the build runs it in its workers).

    The same counts as every ``TOKEN`` match of the title (twice) and body, folded by ``_term``.
    """
    counts: dict[str, int] = {}
    caps: dict[str, int] = {}
    known = _PIECES.get
    text = ". ".join([a.title] * params.title_repeat + [a.body])
    for piece, n in Counter(text.split()).items():  # each distinct piece once
        found = known(piece)
        for term, upper in _piece_terms(piece) if found is None else found:
            counts[term] = counts.get(term, 0) + n
            if upper:
                caps[term] = caps.get(term, 0) + n
    terms = sorted(counts)
    return (
        tuple(terms),
        np.fromiter(map(counts.__getitem__, terms), np.int32, len(terms)),
        np.fromiter((caps.get(t, 0) for t in terms), np.int32, len(terms)),
    )


_EDGES = np.unique(
    np.concatenate([[0], np.ceil(1.09 ** np.arange(400))]).astype(np.int64)
)  # 0, 1, 2, ... 1.09x


def grid(counts: np.ndarray) -> np.ndarray:
    """Each count rounded down to the grid (integers: the same on every machine)."""
    return _EDGES[np.searchsorted(_EDGES, counts, side="right") - 1]


def keys_of(pool: list[Article], given: dict[str, str] | None) -> list[str]:
    """doc_key of each article, or the stand-in ``given`` for it (see RelatedIndex.fit)."""
    if given is None:
        return [doc_key(a) for a in pool]
    return [given.get(a.slug) or doc_key(a) for a in pool]
