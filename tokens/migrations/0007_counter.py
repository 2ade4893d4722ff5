from django.db import migrations


class Migration(migrations.Migration):
    """Login attempt counters become the general windowed counter (login attempts, and the token
    budget on PostgreSQL): same rows, new names."""

    dependencies = [
        ("tokens", "0006_channel_events"),
    ]

    operations = [
        migrations.RenameModel("LoginAttemptCounter", "Counter"),
        migrations.RenameField("Counter", "attempts", "count"),
        migrations.AlterModelOptions(name="counter", options={"verbose_name": "counter"}),
    ]
