"""Documents to send: seeded synthetic text, or texts read from a file.

Synthetic documents are sentences of common English words, so a WordPiece/BPE tokenizer
sees about one token per word plus one per full stop, and every document is different (no
server-side cache can short-cut the work).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from itertools import cycle, islice
from pathlib import Path

from ovembed.errors import InvalidInput

_WORDS = (
    "about above across act add after again against age ago agree air all almost along also "
    "always among amount animal answer any appear apply area arm army around art ask attack "
    "away baby back bad bag ball bank base be bear beat beautiful bed before begin behind best "
    "better between big bill bird black blood blue board boat body book born both box boy "
    "break bring brother build building business buy call camera campaign car card care carry "
    "case cat catch cause cell center central century certain chair chance change character "
    "check child choice church city class clear close coach cold collect college color come "
    "common company compare computer condition consider contain control cost could country "
    "course court cover create crime cultural culture cup current customer cut dark data "
    "daughter day dead deal death debate decade decide deep defense degree describe design "
    "detail develop die difference different difficult dinner direction discover discuss "
    "disease doctor dog door down draw dream drive drop drug during early east easy eat "
    "economy edge education effect effort eight either election else employee end energy "
    "enjoy enough enter entire environment equal evening event every evidence exactly "
    "example expect experience expert explain eye face fact factor fail fall family far fast "
    "father fear federal feel few field fight figure fill film final finally financial find "
    "fine finger finish fire firm first fish five floor fly focus follow food foot force "
    "foreign forget form former forward four free friend front full fund future game garden "
    "gas general generation girl give glass goal good government great green ground group "
    "grow growth guess gun guy hair half hand hang happen happy hard have head health hear "
    "heart heat heavy help here high history hit hold home hope hospital hot hotel hour house "
    "huge human hundred husband idea identify image imagine impact important improve include "
    "increase indeed industry information inside instead interest interview into investment "
    "island issue item itself job join just keep key kid kill kind kitchen know land language "
    "large last late later laugh law lawyer lay lead leader learn least leave left leg legal "
    "less letter level lie life light like likely line list listen little live local long "
    "look lose loss love low machine magazine main maintain major make manage market "
    "material matter maybe mean measure media medical meet meeting member memory mention "
    "message method middle might military million mind minute miss mission model modern "
    "moment money month more morning most mother mouth move movie much music must name "
    "nation natural nature near nearly necessary need network never news newspaper next nice "
    "night none north note nothing notice number occur offer office officer official often "
    "oil old once only open operation order organization other outside owner page pain "
    "painting paper parent part participant partner party pass past patient pattern pay peace "
    "people perform perhaps period person phone physical pick picture piece place plan plant "
    "play player point police policy political poor popular population position positive "
    "power practice prepare present president pressure pretty prevent price private problem "
    "process produce product program project property protect prove provide public pull "
    "purpose push quality question quickly quite race radio raise range rate rather reach "
    "read ready real reality realize reason receive recent record red reduce region remain "
    "remember remove report represent require research resource respond rest result return "
    "reveal rich right rise risk river road rock role room rule run safe same save scene "
    "school science score sea season seat second section security seek sell send senior "
    "sense series serious serve service set seven several shake share shoot short shot "
    "should shoulder show side sign significant similar simple simply since sing single "
    "sister sit site situation size skill skin small smile social society soldier some son "
    "song soon sort sound source south space speak special specific speech spend sport "
    "spring staff stage stand standard star start state station stay step still stock stop "
    "store story strategy street strong student study stuff style subject success suddenly "
    "suffer suggest summer support sure surface system table take talk task teach teacher "
    "team technology television tell ten tend term test thank theory thing think third "
    "thousand threat three through throw time today together tonight total tough toward town "
    "trade traditional training travel treat treatment tree trial trip trouble true truth try "
    "turn two type under understand unit until upon use usually value various very victim "
    "view violence visit voice vote wait walk wall want war watch water way weapon wear week "
    "weight west western whatever whether while white whole wide wife will win wind window "
    "wish within without woman wonder word work worker world worry write writer wrong yard "
    "yeah year yes young yourself"
)
_VOCABULARY = tuple(_WORDS.split())

_SPREAD = 0.25  # synthetic lengths are uniform in [1 - spread, 1 + spread] x the target


def synthetic_documents(count: int, words: int, *, seed: int = 0,
                        punctuate: bool = True) -> list[str]:
    """``count`` different documents of about ``words`` words each (at least one).

    Lengths vary by +-25% around ``words``; with ``punctuate`` the words form sentences of
    5-14 words ending in a full stop, otherwise a document is one lower-case phrase (a query).
    """
    if count < 0 or words < 1:
        raise InvalidInput("synthetic documents need count >= 0 and at least one word")
    rng = random.Random(seed)
    low = max(1, round(words * (1 - _SPREAD)))
    high = max(low, round(words * (1 + _SPREAD)))
    return [_document(rng, rng.randint(low, high), punctuate) for _ in range(count)]


def _document(rng: random.Random, n_words: int, punctuate: bool) -> str:
    chosen = rng.choices(_VOCABULARY, k=n_words)
    if not punctuate:
        return " ".join(chosen)
    sentences: list[str] = []
    start = 0
    while start < n_words:
        end = min(n_words, start + rng.randint(5, 14))
        sentence = " ".join(chosen[start:end])
        sentences.append(sentence[:1].upper() + sentence[1:] + ".")
        start = end
    return " ".join(sentences)


def read_documents(path: Path) -> list[str]:
    """Texts from a file: a JSON list of strings, or one text per non-empty line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read dataset {path}: {exc}", param="dataset") from exc
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path} is not a valid JSON list: {exc}", param="dataset") from exc
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise InvalidInput(f"{path}: the JSON must be a list of strings", param="dataset")
        documents = [item for item in items if item]
    else:
        documents = [line for line in text.splitlines() if line.strip()]
    if not documents:
        raise InvalidInput(f"{path} holds no texts", param="dataset")
    return documents


def load_documents(dataset: str, limit: int, *, words: int = 40, seed: int = 0) -> list[str]:
    """``limit`` documents: synthetic, or the file's texts cycled until there are enough."""
    if limit < 1:
        raise InvalidInput("limit must be at least 1", param="limit")
    if dataset == "synthetic":
        return synthetic_documents(limit, words, seed=seed)
    return take(read_documents(Path(dataset)), limit)


def take(documents: Sequence[str], count: int) -> list[str]:
    """The first ``count`` documents, starting over from the beginning when they run out."""
    return list(islice(cycle(documents), count))
