//! What goes wrong when the local stack starts.

use shared::config::ConfigError;

/// Why the local stack cannot start.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// It would reach something that is not an engine on this machine.
    #[error("{0}")]
    Refused(String),
    #[error("{what}: {reason}")]
    BadSetting { what: &'static str, reason: String },
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Failed(String),
}

impl LocalError {
    /// 2 for a wrong command line or settings (nothing was started), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Refused(_) | Self::BadSetting { .. } | Self::Config(_) => 2,
            Self::Failed(_) => 1,
        }
    }
}
