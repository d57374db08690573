"""import_projects: ids, lists and paged selections, summary, exit statuses."""

import io

import pytest
from django.core.management import CommandError, call_command

from imports.exceptions import PROJECT_BUSY_MESSAGE
from imports.management.commands.import_projects import pages
from imports.models import ImportRun, Project
from imports.services.guard import import_run_request

pytestmark = pytest.mark.django_db(transaction=True)


def run_command(*args):
    """Run the command; return (exit status, stdout lines, stderr text)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("import_projects", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    except CommandError as exc:
        return exc.returncode, out.getvalue().splitlines(), str(exc)
    return code, out.getvalue().splitlines(), err.getvalue()


def accepted_projects(lines) -> list[int]:
    return [int(line.split()[1]) for line in lines if line.startswith("accepted ")]


class TestById:
    def test_a_comma_list_and_repeated_ids_combine(self, make_project, published):
        """--projects 1,2 and --project 3 start all three, each once."""
        a, b, c = make_project(), make_project(), make_project()
        code, out, err = run_command(
            "--projects",
            f"{a.pk},{b.pk}",
            "--project",
            str(c.pk),
            "--project",
            str(a.pk),
        )
        assert code == 0
        # --project ids first, then --projects, each project once.
        assert accepted_projects(out) == [c.pk, a.pk, b.pk]
        assert "accepted 3, rejected as busy 0, rejected as invalid 0" in err
        assert published() == 3

    def test_a_bad_list_exits_2(self, make_project):
        """A malformed --projects value is a bad argument."""
        code, _, message = run_command("--projects", "1,x")
        assert code == 2
        assert "'x' is not an id" in message

    def test_unknown_ids_exit_2_and_start_nothing(self, make_project):
        """Unknown ids are named and nothing starts."""
        project = make_project()
        code, _, message = run_command("--projects", f"{project.pk},999998,999999")
        assert code == 2
        assert "999998, 999999" in message
        assert not ImportRun.objects.exists()


class TestSelections:
    def test_all_selects_every_active_project_in_pk_order(
        self, make_project, published
    ):
        """--all starts every active project, paged, each exactly once."""
        projects = [make_project() for _ in range(5)]
        make_project(is_active=False)
        code, out, _ = run_command("--all", "--page-size", "2")
        assert code == 0
        assert accepted_projects(out) == [p.pk for p in projects]
        assert published() == 5

    def test_connector_and_filters(self, make_connector, make_project, published):
        """--connector and --filter narrow the selection together."""
        one, two = make_connector(), make_connector()
        upsert = make_project(connector=one)
        replace = make_project(connector=one, mode=Project.Mode.REPLACE)
        make_project(connector=two, mode=Project.Mode.REPLACE)
        code, out, _ = run_command("--connector", str(one.pk))
        assert (code, accepted_projects(out)) == (0, [upsert.pk, replace.pk])
        ImportRun.objects.all().delete()
        from imports.locks import project_lock_force_release

        for p in Project.objects.all():
            project_lock_force_release(p.pk)
        code, out, _ = run_command(
            "--connector", str(one.pk), "--filter", "mode=replace"
        )
        assert (code, accepted_projects(out)) == (0, [replace.pk])

    def test_a_repeated_filter_field_matches_any_value(self, make_project):
        """--filter name=a --filter name=b selects both."""
        a = make_project(name="alpha")
        b = make_project(name="beta")
        make_project(name="gamma")
        code, out, _ = run_command(
            "--dry-run", "--filter", "name=alpha", "--filter", "name=beta"
        )
        assert code == 0
        assert out == [f"selected {a.pk} alpha", f"selected {b.pk} beta"]
        assert not ImportRun.objects.exists()

    def test_inactive_projects_only_when_asked(self, make_project):
        """An explicit is_active filter overrides the active-only default."""
        off = make_project(is_active=False)
        code, out, err = run_command("--filter", "is_active=false")
        assert code == 1
        assert out == [
            f"rejected {off.pk}: Project {off.pk} is inactive and accepts no imports."
        ]
        assert "rejected as invalid 1" in err

    @pytest.mark.parametrize(
        "args, fragment",
        [
            (["--filter", "secret=1"], "unknown field 'secret'"),
            (["--filter", "mode"], "expected field=value"),
            (["--filter", "mode=sideways"], "expected one of upsert, replace"),
            (["--filter", "is_active=maybe"], "expected true or false"),
            (["--filter", "connector=abc"], "expected a number"),
            (["--connector", "999999"], "Unknown connector id(s): 999999"),
            (["--all", "--filter", "mode=upsert"], "--all selects every project"),
            (["--all", "--project", "1"], "not both"),
            ([], "Say which projects"),
            (["--all", "--page-size", "0"], "--page-size must be at least 1"),
            (["--all", "--bogus"], "unrecognized arguments"),
        ],
    )
    def test_bad_arguments_exit_2_with_a_clear_message(
        self, make_project, args, fragment
    ):
        """Every bad argument is named, nothing starts, the status is 2."""
        make_project()
        code, _, message = run_command(*args)
        assert code == 2
        assert fragment in message
        assert not ImportRun.objects.exists()


class TestSummaryAndStatus:
    def test_busy_and_invalid_are_counted_and_exit_1_wins(self, make_project):
        """Summary counts each outcome; an invalid project makes the exit 1."""
        busy = make_project()
        import_run_request(project=busy, requested_by="t", trigger="command")
        idle = make_project()
        off = make_project(is_active=False)
        code, out, err = run_command("--projects", f"{busy.pk},{idle.pk},{off.pk}")
        assert code == 1
        assert out[0] == (
            f"rejected {busy.pk}: {PROJECT_BUSY_MESSAGE.format(project_id=busy.pk)}"
        )
        assert out[1].startswith(f"accepted {idle.pk} run ")
        assert out[2].startswith(f"rejected {off.pk}: ")
        assert "accepted 1, rejected as busy 1, rejected as invalid 1" in err

    def test_only_busy_exits_3(self, make_project):
        busy = make_project()
        import_run_request(project=busy, requested_by="t", trigger="command")
        code, _, err = run_command("--project", str(busy.pk))
        assert code == 3
        assert "rejected as busy 1" in err


class TestKeysetPaging:
    def test_pages_neither_skip_nor_repeat_when_projects_change(self, make_project):
        """Projects added or deleted between pages shift nothing."""
        first = [make_project() for _ in range(6)]
        seen = []
        for number, page in enumerate(pages(Project.objects.all(), 2)):
            seen.extend(p.pk for p in page)
            if number == 0:
                # Deleted before its page comes: simply not seen. Added
                # meanwhile: has a higher key, seen once at the end.
                Project.objects.filter(pk=first[3].pk).delete()
                added = make_project()
                # A new row with a key below the cursor cannot exist with
                # a sequence, so nothing is skipped.
        expected = [p.pk for p in first if p.pk != first[3].pk] + [added.pk]
        assert seen == expected

    def test_each_page_is_one_bounded_query(
        self, make_project, django_assert_num_queries
    ):
        """A page is one LIMIT query keyed on pk > last."""
        for _ in range(5):
            make_project()
        with django_assert_num_queries(4) as ctx:
            assert sum(len(page) for page in pages(Project.objects.all(), 2)) == 5
        sql = ctx.captured_queries[1]["sql"]
        assert '"id" >' in sql and "LIMIT 2" in sql and "OFFSET" not in sql


def test_full_refresh_is_requested_with_its_reason(make_project, published):
    project = make_project()
    code, lines, _ = run_command(
        "--project", str(project.pk), "--full-refresh", "--reason", "drift"
    )
    assert code == 0 and accepted_projects(lines) == [project.pk]
    run = project.runs.get()
    assert run.full_refresh
    assert run.events.get(kind="requested").data == {
        "trigger": "command",
        "retry_of": None,
        "full_refresh": True,
        "reason": "drift",
    }
