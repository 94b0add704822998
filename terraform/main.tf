# The root module's pieces are split by concern: api, functions, queues,
# table, events, notifications, alarms, waf, iam, kms, variables, outputs,
# versions. This file holds only the optional demo pipeline.

module "example_pipeline" {
  source = "./modules/example-pipeline"
  count  = var.create_example_pipeline ? 1 : 0

  name               = "${var.name}-example"
  log_retention_days = var.log_retention_days
}
