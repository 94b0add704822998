output "pipeline_name" {
  description = "The CodePipeline's name (for the root module's allowlist)."
  value       = aws_codepipeline.example.name
}

output "source_bucket" {
  description = "Upload the source zip here."
  value       = aws_s3_bucket.bucket["source"].bucket
}

output "pipeline_settings" {
  description = "The pipeline's settings for pipeline-trigger's PIPELINE_SETTINGS: its description and typed inputs."
  value = {
    description = "Demo pipeline: S3 source, CodeBuild"
    inputs      = local.inputs
  }
}
