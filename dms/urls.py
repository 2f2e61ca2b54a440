from django.urls import path

from dms import audit_views, bulk_views, event_views, views

app_name = "dms"
urlpatterns = [
    path("home/", views.home, name="home"),
    path("users/", views.user_list, name="user-list"),
    path("users/new/", views.user_create, name="user-create"),
    path("users/<int:user_id>/", views.user_detail, name="user-detail"),
    path("users/<int:user_id>/request/<str:kind>/", views.user_request, name="user-request"),
    path("requests/", views.request_list, name="request-list"),
    path("requests/<int:request_id>/", views.request_detail, name="request-detail"),
    path(
        "requests/<int:request_id>/<str:decision>/",
        views.request_decide,
        name="request-decide",
    ),
    path("bulk/", bulk_views.bulk_upload, name="bulk-upload"),
    path("bulk/<int:batch_id>/", bulk_views.bulk_detail, name="bulk-detail"),
    path("bulk/<int:batch_id>/progress/", bulk_views.bulk_progress, name="bulk-progress"),
    path("bulk/<int:batch_id>/submit/", bulk_views.bulk_submit, name="bulk-submit"),
    path("bulk/<int:batch_id>/result.csv", bulk_views.bulk_result, name="bulk-result"),
    path("events/", event_views.event_list, name="events"),
    path("events/<int:event_id>/", event_views.event_detail, name="event-detail"),
    path("events/<int:event_id>/register/", event_views.event_register, name="event-register"),
    path("events/<int:event_id>/withdraw/", event_views.event_withdraw, name="event-withdraw"),
    path("audit/", audit_views.audit_list, name="audit-list"),
    path("audit/export.csv", audit_views.audit_csv, name="audit-csv"),
    path("audit/exports/<int:export_id>/", audit_views.audit_export, name="audit-export"),
    path(
        "audit/exports/<int:export_id>/progress/",
        audit_views.audit_export_progress,
        name="audit-export-progress",
    ),
    path(
        "audit/exports/<int:export_id>/audit-trail.csv",
        audit_views.audit_export_download,
        name="audit-export-download",
    ),
]
