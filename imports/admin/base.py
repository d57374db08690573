"""What the importhub ModelAdmins share: media, refresh and object buttons."""

from django.http import Http404
from django.urls import reverse

# How often the active views fetch themselves again, in milliseconds.
REFRESH_MILLISECONDS = 3000


class ImporthubMediaMixin:
    """Shared media and object-button helpers of the importhub admin pages.

    The per-object buttons are POST-only views behind ``admin_view`` (login,
    staff and CSRF checks) that check their own permission as well.
    """

    class Media:
        # The stylesheet is linked by admin/base_site.html, on every page.
        js = ["imports/admin/autorefresh.js"]

    def _object_or_404(self, request, object_id):
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404
        return obj

    def _change_url(self, obj) -> str:
        opts = self.model._meta
        return reverse(
            f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]
        )
