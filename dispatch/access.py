"""Who may do what, where: roles and jurisdiction scope. Pure rules, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dispatch.errors import Forbidden


class Role(StrEnum):
    """Token roles, from most to least powerful."""

    ADMIN = "admin"
    COORDINATOR = "coordinator"
    TRAINER = "trainer"
    VOLUNTEER = "volunteer"
    OBSERVER = "observer"


class Action(StrEnum):
    """What a caller wants to do to a kind of object."""

    READ = "read"
    WRITE = "write"


# Which roles may read/write which kind of object (scope is checked separately).
_PERMISSIONS: dict[tuple[str, Action], frozenset[Role]] = {
    ("jurisdiction", Action.READ): frozenset(Role) - {Role.VOLUNTEER},
    ("jurisdiction", Action.WRITE): frozenset({Role.ADMIN}),
    ("person", Action.READ): frozenset(
        {Role.ADMIN, Role.COORDINATOR, Role.OBSERVER, Role.VOLUNTEER}
    ),
    ("person", Action.WRITE): frozenset({Role.ADMIN, Role.COORDINATOR}),
    ("depot", Action.READ): frozenset({Role.ADMIN, Role.COORDINATOR, Role.OBSERVER}),
    ("depot", Action.WRITE): frozenset({Role.ADMIN, Role.COORDINATOR}),
    ("item", Action.READ): frozenset(Role) - {Role.VOLUNTEER},
    ("item", Action.WRITE): frozenset({Role.ADMIN}),
    ("incident", Action.READ): frozenset({Role.ADMIN, Role.COORDINATOR, Role.OBSERVER}),
    ("incident", Action.WRITE): frozenset({Role.ADMIN, Role.COORDINATOR}),
    ("token", Action.READ): frozenset({Role.ADMIN}),
    ("token", Action.WRITE): frozenset({Role.ADMIN}),
    ("audit", Action.READ): frozenset({Role.ADMIN}),
    ("mode", Action.READ): frozenset(Role) - {Role.VOLUNTEER},
    ("mode", Action.WRITE): frozenset({Role.ADMIN, Role.COORDINATOR}),
    ("mode_policy", Action.READ): frozenset(Role) - {Role.VOLUNTEER},
    ("mode_policy", Action.WRITE): frozenset({Role.ADMIN}),
    ("webhook", Action.READ): frozenset({Role.ADMIN}),
    ("webhook", Action.WRITE): frozenset({Role.ADMIN}),
    # Drills (exercises in their own schemas): trainers run them; coordinators and observers
    # read their reports. Trainers have no write permission on any live object.
    ("drill", Action.READ): frozenset({Role.ADMIN, Role.TRAINER, Role.COORDINATOR, Role.OBSERVER}),
    ("drill", Action.WRITE): frozenset({Role.ADMIN, Role.TRAINER}),
    # Self-service (own record, availability, streams): volunteer tokens bound to a person.
    ("me", Action.READ): frozenset({Role.VOLUNTEER}),
    ("me", Action.WRITE): frozenset({Role.VOLUNTEER}),
    # The coordinator stream of changes in scope (GET /v1/stream).
    ("event_stream", Action.READ): frozenset({Role.ADMIN, Role.COORDINATOR, Role.OBSERVER}),
}

# Roles that may see contact details and home locations of people in their scope.
_PII_ROLES = frozenset({Role.ADMIN, Role.COORDINATOR})


def path_within(path: str, scope_path: str | None) -> bool:
    """True when jurisdiction ``path`` is ``scope_path`` or below it (``None`` = everything)."""
    if scope_path is None:
        return True
    return path == scope_path or path.startswith(scope_path + "/")


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: a token's role and scope.

    ``scope_path`` is the materialised path of the token's jurisdiction (``None`` for an
    unscoped admin); ``person_id`` binds a volunteer token to one person.
    """

    token_id: str
    role: Role
    scope_code: str | None
    scope_path: str | None
    person_id: str | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"token:{self.token_id}"

    def require(self, kind: str, action: Action) -> None:
        """Raise :class:`Forbidden` unless the role may do ``action`` on ``kind``."""
        if self.role not in _PERMISSIONS.get((kind, action), frozenset()):
            raise Forbidden(f"role {self.role.value!r} may not {action.value} {kind} objects")

    def in_scope(self, path: str) -> bool:
        """Whether a jurisdiction path lies inside this caller's scope."""
        if self.role is Role.VOLUNTEER:
            return False
        return path_within(path, self.scope_path)

    def require_scope(self, path: str) -> None:
        """Raise :class:`Forbidden` unless ``path`` lies inside the caller's scope."""
        if not self.in_scope(path):
            raise Forbidden("the jurisdiction is outside this token's scope")

    def sees_personal_data(self, person_path: str, person_id: str) -> bool:
        """Contact details and home location: own record, or a PII role in scope."""
        if self.role is Role.VOLUNTEER:
            return person_id == self.person_id
        return self.role in _PII_ROLES and self.in_scope(person_path)
