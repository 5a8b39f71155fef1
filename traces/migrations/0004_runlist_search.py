# The run list (issue 4, item 2): a free-text search column, its trigram index, and
# indexes for the duration and token sorts.

from django.db import migrations, models


def fill_search_text(apps, schema_editor):
    """Runs stored before this column: the same items traces/filters.py writes, from rows."""
    from traces.filters import _metadata_items, extend_search_text

    Run = apps.get_model("traces", "Run")
    Step = apps.get_model("traces", "Step")
    RunError = apps.get_model("traces", "RunError")
    for run in Run.objects.all().iterator(chunk_size=500):
        nodes = list(Step.objects.filter(run_id=run.pk).values_list("node", "error_message"))
        errors = list(RunError.objects.filter(run_id=run.pk).values_list("error_type", "message"))
        items = [
            run.execution_id,
            run.thread_id,
            *(n for n, _ in nodes),
            *(t for t, _ in errors),
            *_metadata_items(run.metadata),
            *(m for _, m in errors),
            *(m for _, m in nodes),
        ]
        Run.objects.filter(pk=run.pk).update(search_text=extend_search_text("", items))


# pg_trgm's GIN index answers LIKE '%fragment%' without reading every row; SQLite has no
# such index and scans (fine at the sizes SQLite is for). Installing the extension needs
# a role allowed to (a superuser, or the database owner on PostgreSQL 13+ as pg_trgm is
# trusted).
def create_trigram_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS run_search_trgm ON traces_run "
        "USING gin (search_text gin_trgm_ops)"
    )


def drop_trigram_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS run_search_trgm")


class Migration(migrations.Migration):

    dependencies = [
        ("traces", "0003_review_and_exports"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="search_text",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["project", "duration_ms", "id"], name="run_duration"),
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["project", "total_tokens", "id"], name="run_tokens"),
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(
                fields=["project", "graph_name", "-started_at", "-id"], name="run_graph"
            ),
        ),
        migrations.RunPython(fill_search_text, migrations.RunPython.noop),
        migrations.RunPython(create_trigram_index, drop_trigram_index),
    ]
