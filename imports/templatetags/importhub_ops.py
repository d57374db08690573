"""Template tags of the projects' operations header (``ops_display``)."""

from django import template

from imports.admin import display, ops_display

register = template.Library()


@register.simple_tag
def ops_last_status(ops):
    return ops_display.last_status(ops)


@register.simple_tag
def ops_next_schedule(ops):
    return ops_display.next_schedule(ops)


@register.simple_tag
def ops_run_grid(ops):
    return ops_display.run_grid(ops.runs)


@register.simple_tag
def ops_lock(ops):
    return display.lock_status(ops.active_run)


@register.simple_tag
def ops_schedule(ops):
    return display.schedule_summary(ops.schedule)
