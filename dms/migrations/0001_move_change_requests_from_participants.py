import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


MOVED = ["changerequest", "bulkemailbatch", "bulkemailrow"]


def content_types_move(apps, schema_editor):
    """Hand the models' content types (and so their permissions) to the dms app."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    for model in MOVED:
        if not ContentType.objects.using(db).filter(app_label="dms", model=model).exists():
            ContentType.objects.using(db).filter(app_label="participants", model=model).update(
                app_label="dms"
            )


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('participants', '0006_move_change_requests_to_dms'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    # The models come from participants with their tables (db_table keeps the old names), so
    # nothing is created in the database: the rows stay where they are.
    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name='ChangeRequest',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('kind', models.CharField(choices=[('email_register', 'Register or change designated email'), ('user_create', 'Create a user'), ('user_suspend', 'Suspend a user'), ('user_restore', 'Restore a user'), ('otp_reset', 'Reset the OTP device'), ('activation_resend', 'Resend the activation email'), ('bulk_email', 'Bulk email registration')], max_length=24, verbose_name='kind')),
                        ('status', models.CharField(choices=[('pending', 'Pending'), ('approved', 'Approved'), ('rejected', 'Rejected'), ('outdated', 'Outdated')], default='pending', max_length=12, verbose_name='status')),
                        ('target_version', models.PositiveIntegerField(blank=True, null=True, verbose_name='user version')),
                        ('payload', models.JSONField(blank=True, default=dict, verbose_name='details')),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='made at')),
                        ('decided_at', models.DateTimeField(blank=True, null=True, verbose_name='decided at')),
                        ('reason', models.CharField(blank=True, max_length=500, verbose_name='reason')),
                        ('checker', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='checker')),
                        ('maker', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='maker')),
                        ('participant', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='requests', to='participants.participant', verbose_name='participant')),
                        ('target', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='change_requests', to=settings.AUTH_USER_MODEL, verbose_name='user')),
                    ],
                    options={
                        'verbose_name': 'change request',
                        'verbose_name_plural': 'change requests',
                        'db_table': 'participants_changerequest',
                        'ordering': ['-created_at', '-id'],
                    },
                ),
                migrations.CreateModel(
                    name='BulkEmailBatch',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('filename', models.CharField(max_length=255, verbose_name='file name')),
                        ('source', models.BinaryField(verbose_name='file')),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='uploaded at')),
                        ('status', models.CharField(choices=[('validating', 'Checking the file'), ('ready', 'Checked: ready to submit'), ('submitted', 'Waiting for a checker'), ('applied', 'Applied'), ('rejected', 'Rejected'), ('failed', 'Could not be applied')], default='validating', max_length=12, verbose_name='status')),
                        ('error', models.CharField(blank=True, max_length=500, verbose_name='error')),
                        ('total_rows', models.PositiveIntegerField(default=0, verbose_name='rows')),
                        ('processed_rows', models.PositiveIntegerField(default=0, verbose_name='rows checked')),
                        ('register_count', models.PositiveIntegerField(default=0)),
                        ('change_count', models.PositiveIntegerField(default=0)),
                        ('unchanged_count', models.PositiveIntegerField(default=0)),
                        ('refused_count', models.PositiveIntegerField(default=0)),
                        ('maker', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='maker')),
                        ('participant', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='bulk_batches', to='participants.participant', verbose_name='participant')),
                        ('change_request', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='bulk_batch', to='dms.changerequest', verbose_name='request')),
                    ],
                    options={
                        'verbose_name': 'bulk email registration',
                        'verbose_name_plural': 'bulk email registrations',
                        'db_table': 'participants_bulkemailbatch',
                        'ordering': ['-created_at', '-id'],
                    },
                ),
                migrations.CreateModel(
                    name='BulkEmailRow',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('line', models.PositiveIntegerField(verbose_name='line')),
                        ('login_id', models.CharField(blank=True, max_length=255, verbose_name='login ID')),
                        ('email', models.CharField(blank=True, max_length=255, verbose_name='email')),
                        ('outcome', models.CharField(choices=[('register', 'Will be registered'), ('change', 'Will be changed'), ('unchanged', 'Unchanged'), ('refused', 'Refused')], max_length=12, verbose_name='outcome')),
                        ('reason', models.CharField(blank=True, choices=[('unknown_login_id', 'Unknown login ID'), ('other_firm', 'User of another firm'), ('invalid_email', 'Invalid email address'), ('duplicate', 'Login ID appears more than once in the file'), ('own_row', 'This row is you: another DA must register your email'), ('da_not_open', "DAs' email registration has not opened yet"), ('too_many_rows', 'Too many rows in the file'), ('malformed', 'Expected a login ID and an email')], max_length=24, verbose_name='reason')),
                        ('user_version', models.PositiveIntegerField(blank=True, null=True)),
                        ('previous_email', models.CharField(blank=True, max_length=254)),
                        ('batch', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='rows', to='dms.bulkemailbatch')),
                        ('user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'participants_bulkemailrow',
                        'ordering': ['line'],
                        'indexes': [models.Index(fields=['batch', 'outcome'], name='bulkrow_batch_outcome_idx'), models.Index(fields=['batch', 'user'], name='bulkrow_batch_user_idx')],
                    },
                ),
                migrations.AddIndex(
                    model_name='changerequest',
                    index=models.Index(fields=['participant', 'status', '-created_at'], name='request_firm_status_idx'),
                ),
                migrations.AddConstraint(
                    model_name='changerequest',
                    constraint=models.UniqueConstraint(condition=models.Q(('status', 'pending')), fields=('target', 'kind'), name='request_one_pending_per_user_and_kind'),
                ),
            ],
        ),
        migrations.RunPython(content_types_move, migrations.RunPython.noop),
    ]
