# The deployment's settings, checked and rendered: every variable a
# function reads (and the edge's numbers), its default, every rule the
# functions apply to it, and the environment each function gets. No
# provider and no resource, so `terraform plan` evaluates all of it
# offline: tests/terraform_plan.rs plans this module with the documented
# examples and a matrix of hostile values, and starts every function on
# what it renders (docs/deploy.md, "Settings").
terraform {
  # Validation rules that refer to other variables need 1.9.
  required_version = ">= 1.9.0"
}
