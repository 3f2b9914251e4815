"""The `phone` and `visit` channels: instead of contacting the customer, make a task for a person.

The task is assigned to the customer's `owner` and listed by `dunning tasks`; it carries the contact, the
address, the invoices and a summary of their history. Making a task is idempotent per notification key, so
a notification handed over twice still makes one task. Tasks go to the installation's task sink
(`ChannelContext.tasks`), stamped with the engine's clock (`ChannelContext.now`); configure with
`type: phone` or `type: visit` (the same implementation).
"""

from __future__ import annotations

from channels.base import Channel, Message, PermanentDeliveryError, Receipt, TransientDeliveryError


class TaskChannel(Channel):
    type_name = "task"

    async def send(self, message: Message) -> Receipt:
        sink = self.context.tasks
        if sink is None:
            raise PermanentDeliveryError(f"the {self.name} channel makes tasks and needs the database")
        try:
            task_id, new = sink.make_task(
                key=message.key,
                kind=self.options.get("kind", self.name),
                notification_id=message.notification_id,
                stage=message.stage,
                customer=message.customer,
                invoices=message.invoices,
                now=self.context.now(),
            )
        except Exception as exc:  # a busy database is worth another try
            raise TransientDeliveryError(f"could not record the task: {type(exc).__name__}: {exc}") from exc
        owner = message.customer.get("owner") or "unassigned"
        return Receipt(reference=f"task-{task_id}", detail=f"{'new' if new else 'existing'} task for {owner}")


class PhoneChannel(TaskChannel):
    type_name = "phone"


class VisitChannel(TaskChannel):
    type_name = "visit"
