"""A small, clearly synthetic corpus in the four native formats, with their quirks.

Texts are template sentences around label-specific keywords, so a tiny model can learn something
and the demo workflow has signal to report. None of it is real data. The quirks the readers must
handle are all present: CSV-quoted GoEmotions lines and multi-label rows; SemEval's header, 0/1
columns and all-zero rows; ISEAR's 43-field header, trailing `|`, `|` and `á` line-break markers,
`\\"` escapes and non-answers; MELD's CRLF, quoted utterances with commas and typographic quotes.

    python -m emogrid.synthetic OUT_DIR --config config/config.yaml [--seed N] [--scale X]
"""

from __future__ import annotations

import argparse
import csv
import io
import random
from collections.abc import Sequence
from pathlib import Path

from emogrid.labels import is_identity, source_labels
from emogrid.readers import GOEMOTIONS_LABEL_FILE
from emogrid.readers.isear import EMOTION_CODES, ISEAR_HEADER
from emogrid.readers.meld import MELD_HEADER
from emogrid.settings import SYNTHETIC_MARKER

# Rows per split at scale 1.0 (ISEAR: respondents, each answering once per emotion).
SIZES = {
    "goemotions": {"train": 400, "validation": 80, "test": 80},
    "semeval2018_ec": {"train": 200, "validation": 60, "test": 60},
    "isear": {"all": 80},
    "meld": {"train": 250, "validation": 60, "test": 60},
}
MIN_ISEAR_RESPONDENTS = 20  # enough for 10 stratified group folds
EMOT_COLUMN, FIELD1_COLUMN = ISEAR_HEADER.index("EMOT"), ISEAR_HEADER.index("Field1")

# Flavour vocabulary per emotion. Keys are looked up by a source label's target (GoEmotions) label,
# else by the source label itself, so "anger" reads alike in every dataset; a label missing here
# gets made-up keywords (`keywords`), so the generator works for any configured taxonomy.
EMOTION_WORDS = {
    "admiration": "admire impressive brilliant respect outstanding inspiring",
    "amusement": "hilarious funny laughing lol joke giggling",
    "anger": "furious angry rage livid outraged fuming",
    "annoyance": "annoying irritating tiresome bothersome pesky nagging",
    "approval": "agree approve fair reasonable endorse valid",
    "caring": "care hug support comfort gentle help",
    "confusion": "confused puzzled unclear baffled lost huh",
    "curiosity": "wonder curious why intrigued question explore",
    "desire": "want wish crave longing yearn dream",
    "disappointment": "disappointed letdown underwhelming sadly failed bummer",
    "disapproval": "disapprove wrong unacceptable object reject disagree",
    "disgust": "gross disgusting nasty revolting vile yuck",
    "embarrassment": "embarrassed awkward blush cringe mortified humiliated",
    "excitement": "excited thrilled pumped hyped eager wow",
    "fear": "afraid scared terrified dread frightened panic",
    "gratitude": "thanks grateful thankful appreciate cheers indebted",
    "grief": "grieving mourning funeral loss bereaved heartbroken",
    "joy": "happy joyful delighted glad cheerful smiling",
    "love": "love adore sweetheart darling beloved cherish",
    "nervousness": "nervous anxious jittery uneasy tense worried",
    "optimism": "hopeful optimistic brighter confident promising upbeat",
    "pride": "proud accomplished achievement honored triumph dignified",
    "realization": "realized noticed suddenly dawned figured understood",
    "relief": "relieved phew finally reassured unburdened calm",
    "remorse": "sorry regret apologize guilty repent forgive",
    "sadness": "sad unhappy crying tears lonely gloomy",
    "surprise": "surprised shocked unexpected astonished whoa stunned",
    "neutral": "okay schedule meeting weather table report",
    "anticipation": "soon awaiting upcoming countdown expecting tomorrow",
    "pessimism": "hopeless doomed bleak pointless never worse",
    "trust": "trust reliable faithful depend loyal honest",
}
TOPICS = [
    "the new job",
    "my sister's wedding",
    "the exam",
    "the game last night",
    "this thread",
    "the trip",
    "the neighbour's dog",
    "the movie",
    "work today",
    "the concert",
    "the bus ride",
    "the group project",
]
CLAUSES = [
    "I feel so {k} about {t}",
    "{t} was {k}, really {k2}",
    "honestly {t} made me {k}",
    "[NAME] says {t} is {k}",
    "{k} {k2} after {t}",
    "it is {k} how {t} went",
]
# The text of a row without emotion, when the taxonomy has such a label.
NEUTRAL = "neutral"
SENTIMENT = {"joy": "positive", NEUTRAL: "neutral"}  # MELD's Sentiment column; the rest is negative
NAMES = ["Alex", "Sam", "Robin", "Jordan", "Casey", "Morgan"]
EMOJI = ["\U0001f602", "\U0001f621", "\U0001f622", "\u2764\ufe0f", "\U0001f631", "\U0001f44d"]


def keywords(key: str) -> list[str]:
    if key in EMOTION_WORDS:
        return EMOTION_WORDS[key].split()
    # A label without flavour words still gets words of its own: made-up, but consistent.
    return [f"{key}{suffix}" for suffix in ("", "ish", "y", "ness")]


def keyword(rng: random.Random, key: str) -> str:
    """One of the key's words; the first ones are the most frequent (Zipf-like), as in real text,
    which also lets a model learn a label from a handful of examples."""
    words = keywords(key)
    return rng.choices(words, weights=[1 / rank for rank in range(1, len(words) + 1)])[0]


def keyword_key(ds_cfg: dict, source: str) -> str:
    target = source if is_identity(ds_cfg) else ds_cfg["label_map"].get(source)
    return target or source


def clause(rng: random.Random, key: str) -> str:
    return rng.choice(CLAUSES).format(k=keyword(rng, key), k2=keyword(rng, key), t=rng.choice(TOPICS))


def sentence(rng: random.Random, keys: Sequence[str], neutral_key: str = NEUTRAL) -> str:
    """One clause per emotion key (a neutral clause when there is none)."""
    parts = [clause(rng, key) for key in keys] or [clause(rng, neutral_key)]
    text = " and ".join(parts)
    return text[0].upper() + text[1:] + rng.choice([".", "!", "..."])


def lower_first(text: str) -> str:
    """The sentence continued mid-sentence: first letter lower case, except the pronoun I."""
    return text if text.startswith(("I ", "[NAME]")) else text[0].lower() + text[1:]


def sized(n: int, scale: float, minimum: int) -> int:
    return max(minimum, round(n * scale))


def pick_labels(rng: random.Random, row: int, choices: Sequence[str], multi_rate: float) -> list[str]:
    """Cycle through every label first (each split shows each label), then draw 1-3 at random."""
    if row < len(choices):
        return [choices[row]]
    count = 1 if rng.random() > multi_rate else rng.choice([2, 2, 3])
    return rng.sample(list(choices), count)


def csv_text(rows: Sequence[Sequence[str]], **options) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, **options).writerows(rows)
    return buffer.getvalue()


def write_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))


# ----------------------------------------------------------------------------------- GoEmotions


def goemotions_rows(rng: random.Random, n: int, split: str, labels: Sequence[str]) -> list[list[str]]:
    index = {label: i for i, label in enumerate(labels)}
    rows = []
    for row in range(n):
        chosen = pick_labels(rng, row, labels, multi_rate=0.2)
        if len(chosen) > 1 and NEUTRAL in chosen:
            chosen.remove(NEUTRAL)  # neutral does not co-occur with emotions
        text = sentence(rng, [c for c in chosen if c != NEUTRAL])
        if rng.random() < 0.15:
            # Quotes make the line CSV-quoted, with the inner quotes doubled: the GoEmotions quirk.
            text = f'{text} My friend said "{keyword(rng, chosen[0])}" twice.'
        ids = ",".join(str(i) for i in sorted(index[c] for c in chosen))
        rows.append([text, ids, f"syn-{split}-{row:05d}"])
    return rows


def write_goemotions(
    out: Path, ds_cfg: dict, labels: Sequence[str], rng: random.Random, scale: float
) -> None:
    write_file(out / GOEMOTIONS_LABEL_FILE, "\n".join(labels))  # no final newline, like the original
    for split, filename in ds_cfg["splits"].items():
        n = sized(SIZES["goemotions"][split], scale, len(labels))
        rows = goemotions_rows(rng, n, split, labels)
        write_file(out / filename, csv_text(rows, delimiter="\t", lineterminator="\n"))


# ----------------------------------------------------------------------------------- SemEval


def write_semeval(out: Path, ds_cfg: dict, labels: Sequence[str], rng: random.Random, scale: float) -> None:
    columns = list(ds_cfg["label_map"])
    neutral = ds_cfg.get("empty_label") or NEUTRAL
    for split, filename in ds_cfg["splits"].items():
        lines = ["\t".join(["ID", "Tweet", *columns])]
        n = sized(SIZES["semeval2018_ec"][split], scale, len(columns) + 2)
        for row in range(n):
            # Every 12th tweet has no emotion at all: all-zero labels, read as `empty_label`.
            present = [] if row % 12 == 11 else pick_labels(rng, row, columns, multi_rate=0.5)
            text = sentence(rng, [keyword_key(ds_cfg, c) for c in present], neutral_key=neutral)
            key = keyword_key(ds_cfg, present[0]) if present else neutral
            text = f"@user{rng.randint(1, 99)} {text} #{keyword(rng, key)} {rng.choice(EMOJI)}"
            flags = ["1" if c in present else "0" for c in columns]
            lines.append("\t".join([f"2018-Syn-{split}-{row:05d}", text, *flags]))
        write_file(out / filename, "\n".join(lines) + "\n")


# ----------------------------------------------------------------------------------- ISEAR


def isear_text(rng: random.Random, key: str) -> str:
    """A situation with ISEAR's export quirks: `á` and `á|` line breaks, mangled quotes."""
    words = f"When {lower_first(sentence(rng, [key]))}".split()
    for _ in range(rng.randint(0, 2)):
        words.insert(rng.randint(1, len(words) - 1), "á")
    text = " ".join(words)
    roll = rng.random()
    if roll < 0.08:
        # Quotes as exported: `\\` opens, `\\"` closes, and a stray `"` ends the text.
        text += f' á|It was \\{keyword(rng, key)}\\" all day."'
    elif roll < 0.12:
        text += f" á|Still {keyword(rng, key)}."
    return text


def non_answer_text(rng: random.Random, non_answers: Sequence[str]) -> str:
    answer = rng.choice(non_answers)
    return rng.choice([f"[ {answer[0].upper()}{answer[1:]}.]", f"{answer.upper()}."])


def isear_line(rng: random.Random, respondent: list[str], code: int, emotion: str, text: str) -> str:
    """One data line; `respondent` holds the columns ID .. FIEL, the same on all of a person's lines."""
    answers = [str(rng.randint(0, 4)) for _ in ISEAR_HEADER[EMOT_COLUMN + 1 : FIELD1_COLUMN]]
    key = f"{int(respondent[0]):06d}{code}"  # MYKEY: respondent ID and emotion code
    fields = [*respondent, str(code), *answers, emotion, str(rng.randint(1, 4)), str(rng.randint(1, 4)), key]
    return "|".join([*fields, text, "1", ""])  # SIT, STATE, and the empty field after the trailing |


def write_isear(out: Path, ds_cfg: dict, labels: Sequence[str], rng: random.Random, scale: float) -> None:
    emotions = source_labels(ds_cfg, labels)
    non_answers = list(ds_cfg.get("non_answers") or [])
    lines = ["|".join(ISEAR_HEADER)]
    for person in range(sized(SIZES["isear"]["all"], scale, MIN_ISEAR_RESPONDENTS)):
        respondent = [str(90001 + person)] + [str(rng.randint(1, 4)) for _ in ISEAR_HEADER[1:EMOT_COLUMN]]
        for position, emotion in enumerate(emotions, start=1):
            # ISEAR's own EMOT code (the reader checks Field1 against it); a name ISEAR lacks takes its
            # position in the label map.
            code = int(EMOTION_CODES.get(emotion, position))
            if non_answers and rng.random() < 0.04:
                text = non_answer_text(rng, non_answers)
            else:
                text = isear_text(rng, keyword_key(ds_cfg, emotion))
            lines.append(isear_line(rng, respondent, code, emotion, text))
    write_file(out / ds_cfg["splits"]["all"], "\n".join(lines))  # no final newline, like the original


# ----------------------------------------------------------------------------------- MELD


def meld_utterance(rng: random.Random, key: str) -> str:
    text = sentence(rng, [key] if key else [])
    roll = rng.random()
    if roll < 0.3:
        text = f"Well, {lower_first(text)}"  # a comma: the field gets quoted
    elif roll < 0.5:
        text = f"{rng.choice(NAMES)}’s right, {lower_first(text)} “{keyword(rng, key or NEUTRAL)}”"
    return text


def meld_rows(rng: random.Random, n: int, ds_cfg: dict) -> list[list[str]]:
    emotions = list(ds_cfg["label_map"])
    neutral = [e for e in emotions if keyword_key(ds_cfg, e) == NEUTRAL]
    rows, dialogue, turn, seconds = [], 0, 0, 60.0
    for row in range(n):
        # Every emotion once, then about 40% neutral like MELD itself.
        if row < len(emotions):
            emotion = emotions[row]
        else:
            emotion = rng.choice(neutral if neutral and rng.random() < 0.4 else emotions)
        key = keyword_key(ds_cfg, emotion)
        start, seconds = seconds, seconds + rng.uniform(1.0, 4.0)
        rows.append(
            [
                str(row + 1),
                meld_utterance(rng, "" if key == NEUTRAL else key),
                rng.choice(NAMES),
                emotion,
                SENTIMENT.get(key, "negative"),
                str(dialogue),
                str(turn),
                str(rng.randint(1, 9)),
                str(rng.randint(1, 24)),
                timestamp(start),
                timestamp(seconds),
            ]
        )
        turn += 1
        if rng.random() < 0.2:
            dialogue, turn = dialogue + 1, 0
    return rows


def timestamp(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d},{int(seconds % 1 * 1000):03d}"


def write_meld(out: Path, ds_cfg: dict, labels: Sequence[str], rng: random.Random, scale: float) -> None:
    for split, filename in ds_cfg["splits"].items():
        n = sized(SIZES["meld"][split], scale, len(ds_cfg["label_map"]) + 1)
        text = csv_text([MELD_HEADER, *meld_rows(rng, n, ds_cfg)], lineterminator="\r\n")
        write_file(out / filename, text)


WRITERS = {
    "goemotions": write_goemotions,
    "semeval2018_ec": write_semeval,
    "isear": write_isear,
    "meld": write_meld,
}


MARKER_TEXT = (
    "The {name} files in this folder were generated by emogrid.synthetic (seed {seed}, scale {scale}) for "
    "the offline demo. They are not the published dataset: scores on them say nothing about it.\n"
)


def write_corpus(out_dir: str | Path, config: dict, seed: int = 0, scale: float = 1.0) -> list[Path]:
    """Write every configured dataset's files under out_dir/{dataset}/; returns the files written."""
    out_dir = Path(out_dir)
    written = []
    for name, ds_cfg in config["datasets"].items():
        # One generator per dataset: adding a dataset does not change the others' files.
        rng = random.Random(f"emogrid-synthetic:{seed}:{name}")
        WRITERS[ds_cfg.get("reader", name)](out_dir / name, ds_cfg, config["labels"], rng, scale)
        # Marks the folder, so a config pointing at it from another run is refused (config.check_config).
        write_file(out_dir / name / SYNTHETIC_MARKER, MARKER_TEXT.format(name=name, seed=seed, scale=scale))
        written += [out_dir / name / filename for filename in [*ds_cfg["files"], SYNTHETIC_MARKER]]
    return written


def main(argv: Sequence[str] | None = None) -> None:
    import yaml

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    config = yaml.safe_load(args.config.read_text(encoding="utf-8"))
    for path in write_corpus(args.out_dir, config, seed=args.seed, scale=args.scale):
        print(path)


if __name__ == "__main__":
    main()
