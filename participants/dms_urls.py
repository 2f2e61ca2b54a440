from django.urls import path

from participants import dms_views

app_name = "dms"
urlpatterns = [
    path("home/", dms_views.home, name="home"),
    path("users/", dms_views.user_list, name="user-list"),
    path("users/new/", dms_views.user_create, name="user-create"),
    path("users/<int:user_id>/", dms_views.user_detail, name="user-detail"),
    path("users/<int:user_id>/request/<str:kind>/", dms_views.user_request, name="user-request"),
    path("requests/", dms_views.request_list, name="request-list"),
    path("requests/<int:request_id>/", dms_views.request_detail, name="request-detail"),
    path(
        "requests/<int:request_id>/<str:decision>/",
        dms_views.request_decide,
        name="request-decide",
    ),
    path("audit/", dms_views.audit_list, name="audit-list"),
    path("audit/export.csv", dms_views.audit_csv, name="audit-csv"),
]
