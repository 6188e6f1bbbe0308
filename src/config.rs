//! The configuration file (`--config mr.toml`). Flags override what it sets. An unknown key or
//! a wrong type is an error that names the key and the file.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::fault::Faults;

/// The contents of a configuration file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// Fault injection, per phase (`[faults.map]`, `[faults.reduce]`, `faults.seed`).
    pub faults: Faults,
}

impl FileConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<FileConfig> {
        let text = std::fs::read_to_string(path).map_err(Error::io("cannot read config file", path))?;
        let config: FileConfig =
            toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {}", path.display(), e.message())))?;
        config.faults.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_phase_faults_and_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mr.toml");
        std::fs::write(&path, "[faults]\nseed = 3\n[faults.map]\nfailure = 0.25\n").unwrap();
        let c = FileConfig::load(&path).unwrap();
        assert_eq!((c.faults.seed, c.faults.map.failure, c.faults.reduce.failure), (3, 0.25, 0.0));
        std::fs::write(&path, "[faults.map]\nfailur = 0.25\n").unwrap();
        let e = FileConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("failur") && e.contains("mr.toml"), "{e}");
        std::fs::write(&path, "[faults.map]\nfailure = \"high\"\n").unwrap();
        assert!(FileConfig::load(&path).is_err());
    }
}
