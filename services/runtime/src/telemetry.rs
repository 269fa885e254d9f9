//! Tracing setup: human-readable locally, JSON lines in production so log
//! pipelines can index fields (topic, partition, reason) without parsing.

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber; `RUST_LOG` overrides the default `info`.
/// Calling it twice (tests) is harmless.
pub fn init_tracing(json: bool) {
    init_tracing_or(json, "info,rdkafka=warn,librdkafka=warn");
}

/// As [`init_tracing`], with `default` as the filter when `RUST_LOG` is
/// unset (commands that keep the terminal for their own output pass
/// `warn`), without changing the process environment.
pub fn init_tracing_or(json: bool, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
