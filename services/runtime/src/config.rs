//! Layered configuration: the type's `Default` (runs locally), then an
//! optional TOML file, then environment variables. Env keys are
//! `PATROLI_<FIELD>` with `__` descending into nested sections, e.g.
//! `PATROLI_KAFKA__BROKERS=kafka:9092` or `PATROLI_BATCH__MAX_POSTS=32`.
//! `KAFKA_BROKERS` is accepted as the conventional alias for the brokers.

use serde::{de::DeserializeOwned, Serialize};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

pub const ENV_PREFIX: &str = "PATROLI_";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {source}")]
    Toml {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Loads `T` from defaults, `file` (if given) and the given environment.
/// Env vars whose first segment names no top-level field are ignored, so
/// unrelated `PATROLI_*` variables (model paths, test switches) don't break
/// start-up; a value of the wrong type is an error naming the variable.
pub fn load_config<T>(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
{
    let mut merged = serde_json::to_value(T::default())
        .map_err(|e| ConfigError::Invalid(format!("defaults do not serialise: {e}")))?;
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let parsed: toml::Value = toml::from_str(&text).map_err(|source| ConfigError::Toml {
            path: path.to_owned(),
            source,
        })?;
        let parsed = serde_json::to_value(parsed)
            .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?;
        merge(&mut merged, parsed);
    }
    let mut env: Vec<(String, String)> = env.into_iter().collect();
    // Apply the alias first so an explicit PATROLI_KAFKA__BROKERS wins.
    env.sort_by_key(|(k, _)| k != "KAFKA_BROKERS");
    let mut overrides = Vec::new();
    for (key, raw) in env {
        let path: Vec<String> = if key == "KAFKA_BROKERS" {
            vec!["kafka".into(), "brokers".into()]
        } else if let Some(rest) = key.strip_prefix(ENV_PREFIX) {
            rest.split("__").map(str::to_lowercase).collect()
        } else {
            continue;
        };
        if merged.get(&path[0]).is_none() {
            continue;
        }
        set_path(&mut merged, &path, &raw);
        overrides.push((key, path, raw));
    }
    // An env value that looks like JSON may still be meant as text (a
    // numeric password, "true" as a user name): when deserialisation fails
    // at exactly such a field, take the text and try again.
    loop {
        let error = match serde_path_to_error::deserialize::<_, T>(merged.clone()) {
            Ok(config) => return Ok(config),
            Err(error) => error,
        };
        let failed: Vec<String> = error
            .path()
            .iter()
            .map(|segment| segment.to_string())
            .collect();
        let retry = overrides.iter().position(|(_, path, raw)| {
            *path == failed && lookup(&merged, path) != Some(&Value::String(raw.clone()))
        });
        match retry {
            Some(i) => {
                let (_, path, raw) = overrides.remove(i);
                *slot(&mut merged, &path) = Value::String(raw);
            }
            None => {
                let source = overrides
                    .iter()
                    .find(|(_, path, _)| *path == failed)
                    .map(|(key, ..)| format!(" (from {key})"))
                    .unwrap_or_default();
                return Err(ConfigError::Invalid(format!(
                    "{}{source}: {}",
                    error.path(),
                    error.inner()
                )));
            }
        }
    }
}

fn lookup<'v>(root: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter()
        .try_fold(root, |node, segment| node.get(segment))
}

fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (k, v) in overlay {
                merge(base.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Env values are strings; a string-typed default keeps them verbatim (a
/// group id "123" stays a string), anything else is read as JSON first so
/// numbers, booleans and lists work.
fn set_path(root: &mut Value, path: &[String], raw: &str) {
    let target = slot(root, path);
    *target = match target {
        Value::String(_) => Value::String(raw.to_owned()),
        _ => serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned())),
    };
}

/// The value at `path`, creating objects along the way.
fn slot<'v>(root: &'v mut Value, path: &[String]) -> &'v mut Value {
    path.iter().fold(root, |node, segment| {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        node.as_object_mut()
            .expect("just made an object")
            .entry(segment.clone())
            .or_insert(Value::Null)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Batch {
        max_posts: usize,
        max_wait_ms: u64,
    }
    impl Default for Batch {
        fn default() -> Self {
            Batch {
                max_posts: 64,
                max_wait_ms: 50,
            }
        }
    }
    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Conf {
        group_id: String,
        brokers: Option<String>,
        kafka: crate::KafkaConfig,
        batch: Batch,
        topics: Vec<String>,
    }
    impl Default for Conf {
        fn default() -> Self {
            Conf {
                group_id: "g".into(),
                brokers: None,
                kafka: Default::default(),
                batch: Batch::default(),
                topics: vec!["a".into()],
            }
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_then_file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "group_id = \"from-file\"\n[batch]\nmax_posts = 8\n").unwrap();
        let conf: Conf = load_config(
            Some(&file),
            env(&[
                ("PATROLI_BATCH__MAX_WAIT_MS", "5"),
                ("PATROLI_GROUP_ID", "123"),
                ("PATROLI_TOPICS", "[\"x\",\"y\"]"),
                ("PATROLI_UNRELATED_SWITCH", "1"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(conf.group_id, "123");
        assert_eq!(
            conf.batch,
            Batch {
                max_posts: 8,
                max_wait_ms: 5
            }
        );
        assert_eq!(conf.topics, vec!["x", "y"]);
    }

    #[test]
    fn kafka_brokers_alias_loses_to_explicit_key() {
        let conf: Conf = load_config(None, env(&[("KAFKA_BROKERS", "a:1")])).unwrap();
        assert_eq!(conf.kafka.brokers, "a:1");
        let conf: Conf = load_config(
            None,
            env(&[("PATROLI_KAFKA__BROKERS", "b:2"), ("KAFKA_BROKERS", "a:1")]),
        )
        .unwrap();
        assert_eq!(conf.kafka.brokers, "b:2");
    }

    #[test]
    fn json_looking_values_still_reach_string_fields() {
        let conf: Conf = load_config(
            None,
            env(&[
                ("PATROLI_KAFKA__SASL_PASSWORD", "123456"),
                ("PATROLI_KAFKA__SASL_USERNAME", "true"),
                ("PATROLI_BATCH__MAX_POSTS", "16"),
            ]),
        )
        .unwrap();
        assert_eq!(conf.kafka.sasl_password.as_deref(), Some("123456"));
        assert_eq!(conf.kafka.sasl_username.as_deref(), Some("true"));
        assert_eq!(conf.batch.max_posts, 16);
    }

    #[test]
    fn wrong_type_is_a_clear_error() {
        let err = load_config::<Conf>(None, env(&[("PATROLI_BATCH__MAX_POSTS", "many")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid configuration: batch.max_posts (from PATROLI_BATCH__MAX_POSTS): invalid type: string \"many\""),
            "{err}"
        );
    }

    #[test]
    fn unknown_file_key_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[batch]\nmax_postz = 8\n").unwrap();
        let err = load_config::<Conf>(Some(&file), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_postz"), "{err}");
    }

    #[test]
    fn bad_toml_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("broken.toml");
        std::fs::write(&file, "group_id = ").unwrap();
        let err = load_config::<Conf>(Some(&file), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("broken.toml is not valid TOML"), "{err}");
    }
}
