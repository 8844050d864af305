"""The core's one exception tree. Every error carries a user-safe message in en and zh.

    LifecycleError
    ├── PipelineError          a pipeline definition is broken (all problems listed)
    ├── NotFound               unknown account, approval, handoff
    │   └── AmbiguousAccount   a prefix matches several accounts (candidates listed)
    ├── UnknownStage           no stage has that key or label (valid ones listed)
    ├── TransitionRefused      the move is not in the pipeline (allowed next stages listed)
    ├── ChecklistIncomplete    the stage must have its checklist done before leaving
    ├── NotAuthorized          the actor is not in the team that may do this
    ├── Conflict               someone else changed it first
    │   ├── AlreadyInStage     the account is already where it was asked to go
    │   └── AlreadyDecided     the approval was decided by someone else first
    └── InvalidInput           a value is malformed (amount, date, name)
        └── InvalidAmount      an amount that cannot be read (also a ValueError)

Anything that is not a LifecycleError is a bug: adapters log it with a reference id and show
"failed, ref <id>" instead of a traceback.
"""

from __future__ import annotations

from lifecycle.domain.i18n import Lang, Text


class LifecycleError(Exception):
    """A known business error whose message is safe to show to the user as is."""

    def __init__(self, message: Text) -> None:
        super().__init__(message.en)
        self.message = message

    def text(self, lang: Lang = "en") -> str:
        return self.message(lang)


class PipelineError(LifecycleError):
    def __init__(self, problems: list[str]) -> None:
        body = "\n".join(f"- {p}" for p in problems)
        super().__init__(Text(f"The pipeline is invalid:\n{body}", f"流程定义有误:\n{body}"))
        self.problems = problems


class NotFound(LifecycleError):
    pass


class AmbiguousAccount(NotFound):
    def __init__(self, ref: str, candidates: list[str]) -> None:
        names = ", ".join(candidates)
        super().__init__(
            Text(
                f'"{ref}" matches several accounts: {names}. Type more of the name or use #ID.',
                f"“{ref}”匹配到多个客户:{names}。请输入更完整的名称或使用 #编号。",
            )
        )
        self.candidates = candidates


class UnknownStage(LifecycleError):
    def __init__(self, ref: str, valid: list[str]) -> None:
        names = ", ".join(valid)
        super().__init__(Text(f'Unknown stage "{ref}". Stages: {names}.', f"未知阶段“{ref}”。可用阶段:{names}。"))
        self.valid = valid


class TransitionRefused(LifecycleError):
    def __init__(self, message: Text, allowed: list[str]) -> None:
        super().__init__(message)
        self.allowed = allowed


class ChecklistIncomplete(LifecycleError):
    def __init__(self, message: Text, missing: list[str]) -> None:
        super().__init__(message)
        self.missing = missing


class NotAuthorized(LifecycleError):
    pass


class Conflict(LifecycleError):
    pass


class AlreadyInStage(Conflict):
    pass


class AlreadyDecided(Conflict):
    def __init__(self, message: Text, decided_by: str) -> None:
        super().__init__(message)
        self.decided_by = decided_by


class InvalidInput(LifecycleError):
    pass


class InvalidAmount(InvalidInput, ValueError):
    """An amount `lifecycle.domain.money.parse_amount` cannot read. Also a ValueError, as for any text
    that is not a number, so callers that read a file's cells with `except ValueError` take it as is."""
