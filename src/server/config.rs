//! Server configuration, layered like Restate's loader: defaults → file → environment → flags,
//! resolved in one place ([`ServerConfig::resolve`]) and printable (`dipdrg config show`).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a bearer token may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub token: String,
    /// `fund_office` (everything) or `hospital` (its own data only; give `hospital_id`).
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hospital_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// gRPC address; port 0 picks a free port (the chosen address is printed on start).
    pub listen: String,
    /// Prometheus metrics over HTTP (`GET /metrics`); empty turns them off.
    pub metrics_listen: String,
    /// Where the embedded store keeps its file.
    pub data_dir: PathBuf,
    /// PostgreSQL connection string; when set, cases are stored there instead of SQLite
    /// (needs a build with the `postgres` feature).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// PostgreSQL schema for the tables.
    pub database_schema: String,
    /// Region policy file.
    pub policy: PathBuf,
    /// DRG table set or DIP catalog directory, as the policy's scheme needs.
    pub tables: PathBuf,
    /// More region policies to load, listable and activatable by version (`policy` is always
    /// loaded and is active until another is activated).
    pub policies: Vec<PathBuf>,
    /// More table sets (DRG table directories or DIP catalogs) to load beside `tables`.
    pub table_sets: Vec<PathBuf>,
    /// Largest accepted request message, bytes.
    pub max_request_bytes: usize,
    /// TLS: PEM certificate chain and private key. Both or neither; needs a build with the
    /// `tls` feature. Without them the service speaks plaintext (for loopback or a mesh).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Benefits policy file (one-bill settlement, e.g. policies/demo-city-2026-benefits.toml):
    /// PreCheckCase then estimates the patient share; absent: no estimate (stated in the answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub benefits_policy: Option<PathBuf>,
    /// Log level of the structured request logs on stderr: error, warn, info, debug, off.
    pub log_level: String,
    pub tokens: Vec<TokenConfig>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen: "127.0.0.1:50051".into(),
            metrics_listen: "127.0.0.1:9464".into(),
            data_dir: PathBuf::from("data"),
            database_url: None,
            database_schema: "dipdrg".into(),
            policy: PathBuf::from("policies/demo-city-2026-dip.toml"),
            tables: PathBuf::from("grouper-tables/demo-dip"),
            policies: Vec::new(),
            table_sets: Vec::new(),
            max_request_bytes: 4 << 20,
            tls_cert: None,
            tls_key: None,
            benefits_policy: None,
            log_level: "info".into(),
            tokens: Vec::new(),
        }
    }
}

/// Command-line overrides (the last layer).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub policy: Option<PathBuf>,
    pub tables: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: String, message: String },
    #[error("environment variable {name}: {message}")]
    Environment { name: String, message: String },
    #[error("config key {key}: {message}")]
    Invalid { key: String, message: String },
}

/// A TOML error without the file's text: its line, column and message, with any quoted value
/// in the message redacted. toml's own display quotes the offending line, which may hold a
/// token or a database password.
fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let position = error.span().map(|span| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        format!("line {line}, column {column}: ")
    });
    let message = error.message().trim();
    // Values appear in the message as "…" (strings) or `…` (keys, which are not secret).
    let mut redacted = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        if c == '"' {
            if !quoted {
                redacted.push_str("\"<redacted>");
            } else {
                redacted.push('"');
            }
            quoted = !quoted;
        } else if !quoted {
            redacted.push(c);
        }
    }
    format!("{}{redacted}", position.unwrap_or_default())
}

impl ServerConfig {
    /// defaults → `file` → `environment` (`DIPDRG_LISTEN`, `DIPDRG_METRICS_LISTEN`,
    /// `DIPDRG_DATA_DIR`, `DIPDRG_POLICY`, `DIPDRG_TABLES`, `DIPDRG_MAX_REQUEST_BYTES`,
    /// `DIPDRG_DATABASE_URL`, `DIPDRG_LOG_LEVEL`, `DIPDRG_TLS_CERT`, `DIPDRG_TLS_KEY`) →
    /// `overrides`.
    pub fn resolve(
        file: Option<&Path>,
        environment: impl Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> Result<ServerConfig, ConfigError> {
        let mut config = match file {
            None => ServerConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::File { path: path.display().to_string(), message: e.to_string() })?;
                toml::from_str(&text).map_err(|e| ConfigError::File { path: path.display().to_string(), message: toml_error(&text, &e) })?
            }
        };
        if let Some(v) = environment("DIPDRG_LISTEN") {
            config.listen = v;
        }
        if let Some(v) = environment("DIPDRG_METRICS_LISTEN") {
            config.metrics_listen = v;
        }
        if let Some(v) = environment("DIPDRG_DATA_DIR") {
            config.data_dir = v.into();
        }
        if let Some(v) = environment("DIPDRG_DATABASE_URL") {
            config.database_url = Some(v);
        }
        if let Some(v) = environment("DIPDRG_POLICY") {
            config.policy = v.into();
        }
        if let Some(v) = environment("DIPDRG_TABLES") {
            config.tables = v.into();
        }
        if let Some(v) = environment("DIPDRG_LOG_LEVEL") {
            config.log_level = v;
        }
        if let Some(v) = environment("DIPDRG_TLS_CERT") {
            config.tls_cert = Some(v.into());
        }
        if let Some(v) = environment("DIPDRG_TLS_KEY") {
            config.tls_key = Some(v.into());
        }
        if let Some(v) = environment("DIPDRG_MAX_REQUEST_BYTES") {
            config.max_request_bytes = v.parse().map_err(|_| ConfigError::Environment {
                name: "DIPDRG_MAX_REQUEST_BYTES".into(),
                message: format!("{v:?} is not a byte count"),
            })?;
        }
        if let Some(v) = &overrides.listen {
            config.listen = v.clone();
        }
        if let Some(v) = &overrides.data_dir {
            config.data_dir = v.clone();
        }
        if let Some(v) = &overrides.policy {
            config.policy = v.clone();
        }
        if let Some(v) = &overrides.tables {
            config.tables = v.clone();
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid { key: key.into(), message: message.into() };
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid("listen", "must be an address such as 127.0.0.1:50051"));
        }
        if !self.metrics_listen.is_empty() && self.metrics_listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid("metrics_listen", "must be an address such as 127.0.0.1:9464, or empty"));
        }
        if !["error", "warn", "info", "debug", "off"].contains(&self.log_level.as_str()) {
            return Err(invalid("log_level", "must be error, warn, info, debug or off"));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(invalid("tls_cert", "tls_cert and tls_key go together: give both or neither"));
        }
        if self.max_request_bytes < 1024 {
            return Err(invalid("max_request_bytes", "must be at least 1024"));
        }
        for (i, token) in self.tokens.iter().enumerate() {
            let key = format!("tokens[{i}]");
            if token.token.len() < 8 {
                return Err(invalid(&key, "token must be at least 8 characters"));
            }
            match (token.role.as_str(), &token.hospital_id) {
                ("fund_office", None) => {}
                ("hospital", Some(h)) if !h.is_empty() => {}
                ("hospital", _) => return Err(invalid(&key, "a hospital token needs hospital_id")),
                ("fund_office", Some(_)) => return Err(invalid(&key, "a fund_office token takes no hospital_id")),
                _ => return Err(invalid(&format!("{key}.role"), "must be fund_office or hospital")),
            }
        }
        Ok(())
    }

    /// The resolved configuration as TOML, tokens redacted.
    pub fn show(&self) -> String {
        let mut shown = self.clone();
        for token in &mut shown.tokens {
            token.token = "<redacted>".into();
        }
        if shown.database_url.is_some() {
            shown.database_url = Some("<redacted>".into());
        }
        toml::to_string(&shown).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile_path::TempFile {
        tempfile_path::TempFile::new(text)
    }

    /// A file under the system temp directory, removed on drop.
    mod tempfile_path {
        pub struct TempFile(pub std::path::PathBuf);
        impl TempFile {
            pub fn new(text: &str) -> TempFile {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let path =
                    std::env::temp_dir().join(format!("dipdrg-config-{}-{}.toml", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
                std::fs::write(&path, text).unwrap();
                TempFile(path)
            }
        }
        impl Drop for TempFile {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn layers_apply_in_order_defaults_file_environment_flags() {
        let config = file("listen = \"127.0.0.1:6000\"\nlog_level = \"warn\"\npolicies = [\"p2.toml\"]\n");
        let environment = |name: &str| match name {
            "DIPDRG_LISTEN" => Some("127.0.0.1:7000".to_string()),
            "DIPDRG_LOG_LEVEL" => Some("debug".to_string()),
            _ => None,
        };
        let resolved = ServerConfig::resolve(Some(&config.0), environment, &Overrides::default()).unwrap();
        assert_eq!((resolved.listen.as_str(), resolved.log_level.as_str()), ("127.0.0.1:7000", "debug"), "environment beats file");
        assert_eq!(resolved.policies, [PathBuf::from("p2.toml")], "file beats defaults");
        assert_eq!(resolved.max_request_bytes, ServerConfig::default().max_request_bytes, "defaults fill the rest");
        let flags = Overrides { listen: Some("127.0.0.1:8000".into()), ..Default::default() };
        let resolved = ServerConfig::resolve(Some(&config.0), environment, &flags).unwrap();
        assert_eq!(resolved.listen, "127.0.0.1:8000", "flags beat everything");
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        let unknown = file("listen_addr = \"127.0.0.1:1\"\n");
        let error = ServerConfig::resolve(Some(&unknown.0), |_| None, &Overrides::default()).unwrap_err().to_string();
        assert!(error.contains("listen_addr"), "{error}");
        let half_tls = file("tls_cert = \"cert.pem\"\n");
        let error = ServerConfig::resolve(Some(&half_tls.0), |_| None, &Overrides::default()).unwrap_err().to_string();
        assert!(error.contains("tls_cert") && error.contains("tls_key"), "{error}");
        let level = |name: &str| (name == "DIPDRG_LOG_LEVEL").then(|| "loud".to_string());
        let error = ServerConfig::resolve(None, level, &Overrides::default()).unwrap_err().to_string();
        assert!(error.contains("log_level"), "{error}");
        let size = |name: &str| (name == "DIPDRG_MAX_REQUEST_BYTES").then(|| "lots".to_string());
        let error = ServerConfig::resolve(None, size, &Overrides::default()).unwrap_err().to_string();
        assert!(error.contains("DIPDRG_MAX_REQUEST_BYTES"), "{error}");
    }

    #[test]
    fn config_errors_never_echo_secret_values() {
        let texts = [
            "[[tokens]]\ntokn = \"very-secret-token\"\nrole = \"fund_office\"\n",
            "tokens = [{ token = \"very-secret-token\", rol = \"fund_office\" }]\n",
            "database_url = \"host=db password=very-secret-token\"\nlisten = 5\n",
            "database_url = \"host=db password=very-secret-token\"\nlisten_addr = \"x\"\n",
            "[[tokens]]\ntoken = \"very-secret-token\"\nrole = \"fund_office\"\nhospital_id = 7\n",
            "max_request_bytes = \"very-secret-token\"\n",
        ];
        for text in texts {
            let config = file(text);
            let error = ServerConfig::resolve(Some(&config.0), |_| None, &Overrides::default()).unwrap_err().to_string();
            assert!(!error.contains("secret"), "{error}");
            assert!(error.contains("line "), "the error still says where: {error}");
        }
        let misspelt = file("[[tokens]]\ntokn = \"very-secret-token\"\nrole = \"fund_office\"\n");
        let error = ServerConfig::resolve(Some(&misspelt.0), |_| None, &Overrides::default()).unwrap_err().to_string();
        assert!(error.contains("tokn"), "the key is named: {error}");
    }

    #[test]
    fn show_redacts_secrets() {
        let config =
            file("database_url = \"host=db password=secret\"\n[[tokens]]\ntoken = \"very-secret-token\"\nrole = \"fund_office\"\n");
        let shown = ServerConfig::resolve(Some(&config.0), |_| None, &Overrides::default()).unwrap().show();
        assert!(!shown.contains("secret") && shown.contains("<redacted>"), "{shown}");
    }
}
