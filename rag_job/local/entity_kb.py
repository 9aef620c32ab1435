"""A generated knowledge base whose held-out questions can only be answered by reading.

The shipped hand-written knowledge base is about famous facts, and a tiny model trained on
its questions memorises the answers: that shows training works, not that retrieval matters.
Here every passage describes an invented entity (a town or a ship) whose facts are invented
names drawn at random, and the questions are split by entity: training questions ask about
some entities, held-out questions about entities no training question mentions. An answer is
a span of its entity's passage and cannot be guessed from the question (answers are drawn
uniformly from a pool of hundreds of names, none contained in the entity's own name), so a
model answers a held-out question only by reading the passage the retriever brings.

Deterministic for a seed; a few thousand passages are generated in well under a second.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"


@dataclass(frozen=True)
class Relation:
    """One fact of an entity: the sentence that states it and the question that asks it."""

    key: str
    statement: str  # "{value}" is the answer
    question: str  # "{name}" is the entity


#: Entity kinds, each with the facts its passages state.
KINDS: dict[str, tuple[str, tuple[Relation, ...]]] = {
    "town": (
        "{name} is a town.",
        (
            Relation("founder", "It was founded by {value}.", "Who founded {name}?"),
            Relation("river", "The {value} river runs through it.", "Which river runs through {name}?"),
            Relation("leader", "Its leader is {value}.", "Who leads {name}?"),
        ),
    ),
    "ship": (
        "The {name} is a ship.",
        (
            Relation("captain", "Its captain is {value}.", "Who is the captain of the {name}?"),
            Relation("port", "Its home port is {value}.", "What is the home port of the {name}?"),
            Relation("builder", "It was built by {value}.", "Who built the {name}?"),
        ),
    ),
}


@dataclass(frozen=True)
class EntityKB:
    """Passages (`id`, `title`, `text`) and questions (`question`, `answers`, `gold_ids`) split by entity."""

    passages: list[dict]
    train: list[dict]
    heldout: list[dict]


@dataclass(frozen=True)
class EntityKBFiles:
    knowledge_base: Path
    qa_train: Path
    qa_heldout: Path


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(syllables)).capitalize()


def _distinct_words(rng: random.Random, count: int, syllables: int, avoid: set[str]) -> list[str]:
    space = (len(_CONSONANTS) * len(_VOWELS)) ** syllables
    if count > space // 4:
        raise ValueError(f"cannot draw {count} distinct {syllables}-syllable names (at most {space // 4})")
    words: set[str] = set()
    while len(words) < count:
        word = _word(rng, syllables)
        if word not in avoid:
            words.add(word)
    ordered = sorted(words)
    rng.shuffle(ordered)
    return ordered


def generate_entity_kb(
    entities: int = 2000, heldout_fraction: float = 0.2, answer_pool: int = 400, seed: int = 0
) -> EntityKB:
    """`entities` passages, three questions each; the last `heldout_fraction` of the entities
    (in a seeded random order) are asked about only in the held-out questions."""
    if entities < 2:
        raise ValueError("entities must be at least 2 (some to train on, some held out)")
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must be between 0 and 1, not {heldout_fraction}")
    relations_per_entity = max(len(relations) for _, relations in KINDS.values())
    if answer_pool < relations_per_entity:
        raise ValueError(f"answer_pool must be at least {relations_per_entity}")
    rng = random.Random(seed)
    names = _distinct_words(rng, entities, 3, set())
    pool = _distinct_words(rng, answer_pool, 2, set(names))
    kinds = sorted(KINDS)
    heldout_from = entities - max(1, round(entities * heldout_fraction))
    passages, train, heldout = [], [], []
    for index, name in enumerate(names):
        opening, relations = KINDS[kinds[index % len(kinds)]]
        # No answer inside the entity's name: the question would give it away.
        candidates = [value for value in pool if value.lower() not in name.lower()]
        values = rng.sample(candidates, len(relations))
        order = rng.sample(range(len(relations)), len(relations))
        sentences = [opening.format(name=name)]
        sentences += [relations[i].statement.format(value=values[i]) for i in order]
        passage_id = f"e{index:05d}"
        passages.append({"id": passage_id, "title": name, "text": " ".join(sentences)})
        questions = heldout if index >= heldout_from else train
        for relation, value in zip(relations, values, strict=True):
            questions.append(
                {
                    "question": relation.question.format(name=name),
                    "answers": [value],
                    "gold_ids": [passage_id],
                }
            )
    return EntityKB(passages=passages, train=train, heldout=heldout)


def write_entity_kb(kb: EntityKB, out_dir: Path) -> EntityKBFiles:
    """JSONL files in the formats `ingest` and `read_examples` take."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = EntityKBFiles(
        knowledge_base=out_dir / "knowledge_base.jsonl",
        qa_train=out_dir / "qa_train.jsonl",
        qa_heldout=out_dir / "qa_heldout.jsonl",
    )
    for path, rows in (
        (files.knowledge_base, kb.passages),
        (files.qa_train, kb.train),
        (files.qa_heldout, kb.heldout),
    ):
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return files
