//! What can go wrong in `trigger-ops`, and the exit code each means: 2
//! for a wrong command line or settings (nothing was touched), 1 otherwise.

use shared::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("missing {0}")]
    MissingSetting(&'static str),
    #[error("{what}: {reason}")]
    BadSetting { what: &'static str, reason: String },
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("cannot read terraform outputs {path}: {reason}")]
    TerraformOutputs { path: String, reason: String },
    #[error("the {which} at {url} cannot be used: {reason}")]
    Queue {
        which: &'static str,
        url: String,
        reason: String,
    },
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Local(String),
    #[error("{0}")]
    Store(String),
    #[error("{0}")]
    NotFound(String),
}

impl OpsError {
    /// 2 for a wrong command line or settings (nothing was touched), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::MissingSetting(_)
            | Self::BadSetting { .. }
            | Self::Config(_)
            | Self::TerraformOutputs { .. }
            | Self::Refused(_) => 2,
            Self::Queue { .. } | Self::Local(_) | Self::Store(_) | Self::NotFound(_) => 1,
        }
    }
}
