from django.urls import path

from participants import views

app_name = "participants"
urlpatterns = [
    path("online/", views.online_home, name="online-home"),
    path("reports/", views.report_list, name="report-list"),
    path("reports/<int:report_id>/download/", views.report_download, name="report-download"),
]
