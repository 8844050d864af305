"""The error boundary every adapter uses: known errors shown as they are, bugs as a reference id."""

from __future__ import annotations

import logging
import uuid

from lifecycle.domain.errors import LifecycleError
from lifecycle.domain.i18n import Lang, Text

log = logging.getLogger("stagebot.errors")


def user_text(exc: BaseException, *, context: str = "") -> Text:
    """What the person sees, in both languages. Unknown exceptions are logged with a short ref and never shown raw."""
    if isinstance(exc, LifecycleError):
        return Text(exc.text("en"), exc.text("zh"))
    ref = uuid.uuid4().hex[:8]
    log.error("unexpected error ref=%s %s", ref, context, exc_info=exc)
    return Text(f"Something went wrong (ref {ref}). It has been logged.", f"操作失败,错误编号 {ref}。")


def user_message(exc: BaseException, lang: Lang = "en", *, context: str = "") -> str:
    return user_text(exc, context=context)(lang)
