variable "name" {
  description = "Name of the pipeline and prefix of its resources."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,45}[a-z0-9]$", var.name))
    error_message = "name must be 3-47 lowercase letters, digits or dashes (it prefixes S3 bucket names)."
  }
}

variable "log_retention_days" {
  description = "Retention of the build's log group."
  type        = number
  default     = 365
}

variable "source_object_key" {
  description = "Key of the source zip in the source bucket; uploading a new version starts nothing (polling is off), pipeline-trigger does."
  type        = string
  default     = "source.zip"
}
