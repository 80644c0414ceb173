"""The admin login throttle's counters give way to django-axes' access attempts."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("backoffice", "0003_shared_cache_table")]

    operations = [migrations.DeleteModel(name="LoginThrottle")]
