"""Simulated responders: seeded answers to offers, departure and travel, per skill or group.

Every random draw comes from a generator seeded by the drill seed and the offer's identity
(person, incident, skill, and how many times that pair was offered before), never from shared
state, so the same offer gets the same answer whatever else happened in between and whichever
policy made the plan. That makes two policies comparable offer by offer.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from dispatch.access import path_within
from drills.scenario import AnswerDelay, Behaviour, Responders

__all__ = ["Decision", "PersonInfo", "SimulatedResponders"]

Answer = Literal["accept", "decline", "none"]


@dataclass(frozen=True, slots=True)
class PersonInfo:
    """What the simulation needs to know about a person."""

    id: str
    kind: str
    path: str
    skills: frozenset[str]


@dataclass(frozen=True, slots=True)
class Decision:
    """How one person answers one offer, and (if yes) how they get there."""

    answer: Answer
    delay_s: float
    departure_s: float
    travel_factor: float
    why: str = ""


def draw_delay(rng: random.Random, d: AnswerDelay) -> float:
    """One answer delay in seconds from the configured distribution (median ``median_s``)."""
    if d.distribution == "fixed":
        return d.median_s
    if d.distribution == "exponential":
        return rng.expovariate(math.log(2) / d.median_s)
    return rng.lognormvariate(math.log(d.median_s), d.sigma)


class SimulatedResponders:
    """Answers offers for the people of a drill."""

    def __init__(
        self,
        spec: Responders,
        seed: int,
        people: dict[str, PersonInfo],
        paths: dict[str, str],
    ) -> None:
        self.spec = spec
        self.seed = seed
        self.people = people
        self.paths = paths  # jurisdiction code → path
        self._offers: dict[tuple[str, str, str], int] = {}
        self._away: dict[str, tuple[datetime | None, Literal["no_answer", "decline"]]] = {}

    def behaviour(self, person_id: str, skill: str) -> Behaviour:
        """The default behaviour refined by every matching override, in file order."""
        b = self.spec.default
        p = self.people.get(person_id)
        for o in self.spec.overrides:
            if o.skill is not None and o.skill != skill:
                continue
            if o.kind is not None and (p is None or p.kind != o.kind):
                continue
            if o.jurisdiction is not None:
                jp = self.paths.get(o.jurisdiction)
                if p is None or jp is None or not path_within(p.path, jp):
                    continue
            changes = {
                k: v
                for k, v in o.model_dump(exclude={"skill", "jurisdiction", "kind"}).items()
                if v is not None
            }
            b = Behaviour.model_validate({**b.model_dump(), **changes})
        return b

    def group(self, jurisdiction: str, skill: str | None) -> list[str]:
        """People of a jurisdiction's subtree (with ``skill`` if given), sorted by id."""
        jp = self.paths.get(jurisdiction)
        if jp is None:
            return []
        return sorted(
            p.id
            for p in self.people.values()
            if path_within(p.path, jp) and (skill is None or skill in p.skills)
        )

    def make_unavailable(
        self,
        key: str,
        jurisdiction: str,
        skill: str | None,
        share: float,
        until: datetime | None,
        response: Literal["no_answer", "decline"],
    ) -> list[str]:
        """Pick a seeded ``share`` of the group and keep them from answering until ``until``."""
        members = self.group(jurisdiction, skill)
        rng = random.Random(f"{self.seed}|unavailable|{key}")
        chosen = sorted(rng.sample(members, round(share * len(members))))
        for pid in chosen:
            self._away[pid] = (until, response)
        return chosen

    def decide(self, person_id: str, incident_id: str, skill: str, now: datetime) -> Decision:
        """The answer to a new offer (draws in a fixed order from the offer's own generator)."""
        key = (person_id, incident_id, skill)
        n = self._offers.get(key, 0) + 1
        self._offers[key] = n
        rng = random.Random(f"{self.seed}|{person_id}|{incident_id}|{skill}|{n}")
        b = self.behaviour(person_id, skill)
        no_show = rng.random() < b.no_show_rate
        delay = draw_delay(rng, b.answer_delay)
        yes = rng.random() < b.accept_probability
        factor = max(0.3, rng.gauss(1.0, b.travel_speed_noise))
        away = self._away.get(person_id)
        if away is not None and (away[0] is None or now < away[0]):
            if away[1] == "decline":
                return Decision("decline", delay, 0.0, factor, "unavailable")
            return Decision("none", delay, 0.0, factor, "unavailable")
        if no_show:
            return Decision("none", delay, 0.0, factor, "no-show")
        return Decision("accept" if yes else "decline", delay, b.departure_delay_s, factor)
