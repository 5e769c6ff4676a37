//! Where maasctl keeps its files.

use std::path::PathBuf;

/// Environment variable overriding the data directory.
pub const DATA_DIR_ENV: &str = "MAASCTL_DATA_DIR";

/// The data directory: `--data-dir`, else `$MAASCTL_DATA_DIR` (clap reads
/// both into `flag`), else the user's data directory
/// (`~/.local/share/maasctl` on Linux).
pub fn data_dir(flag: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = flag {
        return Ok(p);
    }
    directories::ProjectDirs::from("dev", "maasctl", "maasctl")
        .map(|d| d.data_dir().to_path_buf())
        .ok_or_else(|| {
            format!("cannot find a home directory for the data files; pass --data-dir or set {DATA_DIR_ENV}")
        })
}

/// The operating-system user running this process, as the audit trail
/// names local changes: `$USER`, else `$LOGNAME`, else `uid:N`.
pub fn os_user() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self")
                .map(|m| format!("uid:{}", m.uid()))
                .unwrap_or_else(|_| "unknown".into())
        })
}
