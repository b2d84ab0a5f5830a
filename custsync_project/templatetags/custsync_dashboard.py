"""`{% custsync_dashboard as board %}`: the dashboard data for the admin index (see custsync_project.dashboard)."""

from django import template

from custsync_project.dashboard import dashboard_build

register = template.Library()


@register.simple_tag(takes_context=True)
def custsync_dashboard(context):
    request = context.get("request")
    if request is None or not request.user.is_active or not request.user.is_staff:
        return None
    return dashboard_build(user=request.user)
