# The on-call topic: the notifier's e-mails and every alarm.

resource "aws_sns_topic" "alerts" {
  name              = "${var.name}-on-call"
  kms_master_key_id = aws_kms_key.main.arn
}

resource "aws_sns_topic_subscription" "email" {
  for_each  = toset(var.alert_emails)
  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = each.value
}
