from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('participants', '0005_user_participant_login_index'),
    ]

    # The models move to the dms app (dms/migrations/0001) with their tables, which keep
    # their names and rows: only Django's idea of which app owns them changes here.
    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.RemoveField(
                    model_name='bulkemailrow',
                    name='batch',
                ),
                migrations.RemoveField(
                    model_name='bulkemailrow',
                    name='user',
                ),
                migrations.RemoveField(
                    model_name='changerequest',
                    name='checker',
                ),
                migrations.RemoveField(
                    model_name='changerequest',
                    name='maker',
                ),
                migrations.RemoveField(
                    model_name='changerequest',
                    name='participant',
                ),
                migrations.RemoveField(
                    model_name='changerequest',
                    name='target',
                ),
                migrations.DeleteModel(
                    name='BulkEmailBatch',
                ),
                migrations.DeleteModel(
                    name='BulkEmailRow',
                ),
                migrations.DeleteModel(
                    name='ChangeRequest',
                ),
            ],
        ),
    ]
