from django.contrib import admin
from django.http import HttpRequest

from .models import ApiKey, Membership, Project, Run


class MembershipInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Membership
    extra = 0


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["slug", "name", "retention_days", "created_at"]
    inlines = [MembershipInline]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["prefix", "project", "name", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "key_hash", "created_at", "last_used_at"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["execution_id", "project", "status", "graph_name", "started_at", "node_count"]
    list_filter = ["status", "pinned", "project"]
    search_fields = ["execution_id", "thread_id"]
    readonly_fields = [f.name for f in Run._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Runs are written by ingestion only (traces/ingest.py); an empty one added here
        # broke its unique constraint with a 500.
        return False
