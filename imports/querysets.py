"""Status groups of import runs as queryset methods, used everywhere."""

from django.db import models


class ImportRunQuerySet(models.QuerySet):
    """The run status groups; the tuples live on ``ImportRun``."""

    def active(self):
        return self.filter(status__in=self.model.ACTIVE_STATUSES)

    def holding_slots(self):
        return self.filter(status__in=self.model.SLOT_HOLDING_STATUSES)

    def finished(self):
        return self.filter(status__in=self.model.FINAL_STATUSES)

    def failed(self):
        return self.filter(status=self.model.Status.FAILED)
