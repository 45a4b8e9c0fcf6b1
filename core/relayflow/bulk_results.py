"""What the operations of production answer with: bulk stops and redrives, and purges.

`relayflow.results` re-exports these, so `from relayflow.results import BulkPage` keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from relayflow.result_fields import flag_field, int_field, name_list, object_list, text_field

__all__ = ["BulkFailure", "BulkPage", "BulkSkip", "PurgeResult"]


@dataclass(frozen=True, slots=True)
class BulkSkip:
    """An execution of a bulk page left alone: it no longer matched the filter.

    `relayflow.engine.bulk.Skip` is another name for it.

    Attributes:
        name: the execution's name.
        reason: one sentence, such as `it is Stopped now`.
    """

    name: str
    reason: str

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> BulkSkip:
        """From `{"Name", "Reason"}`."""
        return cls(text_field(doc, "Name"), text_field(doc, "Reason"))

    def to_api(self) -> dict[str, str]:
        """`{"Name", "Reason"}`."""
        return {"Name": self.name, "Reason": self.reason}


@dataclass(frozen=True, slots=True)
class BulkFailure:
    """An execution of a bulk page the action failed on, and the refusal it got.

    `relayflow.engine.bulk.Failure` is another name for it.

    Attributes:
        name: the execution's name.
        code: the refusal's code, such as `ExecutionNotRedrivable`.
        message: its sentence.
    """

    name: str
    code: str
    message: str

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> BulkFailure:
        """From `{"Name", "Code", "Message"}`."""
        return cls(text_field(doc, "Name"), text_field(doc, "Code"), text_field(doc, "Message"))

    def to_api(self) -> dict[str, str]:
        """`{"Name", "Code", "Message"}`."""
        return {"Name": self.name, "Code": self.code, "Message": self.message}


@dataclass(frozen=True)
class BulkPage:
    """What one StopExecutions or RedriveExecutions call did with one page of the matches.

    `relayflow.engine.bulk.BulkResult` is another name for it.

    Attributes:
        matched: how many executions matched the filter when the call began (the whole flow,
            not only this page).
        selected: the names of the page: those acted on, or with ``dry_run`` those that would
            have been. The engine gives them in name order; from the server's answer (which
            lists them only on a dry run) they are the names of `done`, `skipped` and `failed`,
            sorted.
        done: the names acted on.
        skipped: those left alone because they no longer matched.
        failed: those the action failed on, each with its refusal.
        next_token: pass it as `next_token` to act on the next page; "" after the last page.
        dry_run: nothing was done, only selected.
    """

    matched: int
    selected: tuple[str, ...]
    done: tuple[str, ...] = ()
    skipped: tuple[BulkSkip, ...] = ()
    failed: tuple[BulkFailure, ...] = ()
    next_token: str = ""
    dry_run: bool = False

    @property
    def last(self) -> bool:
        """Whether no page follows this one."""
        return not self.next_token

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> BulkPage:
        """From the answer's `Matched`, `Done`, `Skipped`, `Failed`, `NextToken`, `DryRun`.

        Raises:
            relayflow.client.ClientError: `InvalidResponse`, a field cannot be read.
        """
        done = name_list(doc.get("Done"), "Done")
        skipped = tuple(BulkSkip.from_api(d) for d in object_list(doc.get("Skipped"), "Skipped"))
        failed = tuple(BulkFailure.from_api(d) for d in object_list(doc.get("Failed"), "Failed"))
        dry_run = flag_field(doc, "DryRun")
        if "Selected" in doc:
            selected = name_list(doc.get("Selected"), "Selected")
        else:
            selected = tuple(sorted([*done, *(s.name for s in skipped), *(f.name for f in failed)]))
        return cls(
            int_field(doc, "Matched"),
            selected,
            done,
            skipped,
            failed,
            text_field(doc, "NextToken"),
            dry_run,
        )

    def to_api(self) -> dict[str, Any]:
        """The answer of StopExecutions and RedriveExecutions (`Selected` on a dry run only)."""
        doc: dict[str, Any] = {
            "Matched": self.matched,
            "Done": list(self.done),
            "Skipped": [s.to_api() for s in self.skipped],
            "Failed": [f.to_api() for f in self.failed],
            "NextToken": self.next_token,
            "DryRun": self.dry_run,
        }
        if self.dry_run:
            doc["Selected"] = list(self.selected)
        return doc


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """What a PurgeExecutions call did (or, with ``dry_run``, would do).

    `relayflow.engine.retention.PurgeResult` is the same class.

    Attributes:
        count: how many executions this call deleted (would delete).
        remaining: how many still match afterwards (ended before the time, of the flow): the
            next call's work. On PostgreSQL it counts those another transaction held.
        dry_run: nothing was deleted.
    """

    count: int
    remaining: int
    dry_run: bool = False

    @property
    def more(self) -> bool:
        """Whether executions that match remain (call again)."""
        return self.remaining > 0

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> PurgeResult:
        """From `{"Count", "Remaining", "DryRun"}` (`More` follows from `Remaining`)."""
        return cls(int_field(doc, "Count"), int_field(doc, "Remaining"), flag_field(doc, "DryRun"))

    def to_api(self) -> dict[str, Any]:
        """`{"Count", "Remaining", "More", "DryRun"}`, PurgeExecutions' answer."""
        return {
            "Count": self.count,
            "Remaining": self.remaining,
            "More": self.more,
            "DryRun": self.dry_run,
        }
