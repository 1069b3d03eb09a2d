//! Reading `--mesh-config` files: PeerAuthentication and DestinationRule objects from YAML
//! manifests or `kubectl get -o json` lists, into a [`MeshPolicy`]; every other kind is skipped,
//! and a file that cannot be used is one [`PolicyError`] (the objects before the error are kept).

use super::{DestinationRule, MeshPolicy, PeerAuthentication, PeerMode, TlsMode};
use crate::sanitize::escape_str;
use std::collections::BTreeMap;
use std::path::PathBuf;
use yaml_serde::Value;

/// Largest `--mesh-config` file read (a cluster's whole policy is far smaller).
pub(crate) const MAX_CONFIG_BYTES: u64 = 32 << 20;
/// Objects kept over all the files.
pub(crate) const MAX_OBJECTS: usize = 100_000;
/// Namespace of a manifest object without `metadata.namespace` (what `kubectl apply` uses in a
/// context without a namespace).
const MANIFEST_NAMESPACE: &str = "default";

/// A `--mesh-config` file that could not be used (whole or in part).
#[derive(Debug, thiserror::Error)]
pub(crate) enum PolicyError {
    /// Not readable.
    #[error("--mesh-config {path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Larger than [`MAX_CONFIG_BYTES`].
    #[error("--mesh-config {path}: larger than {MAX_CONFIG_BYTES} bytes; give the PeerAuthentication and DestinationRule objects only")]
    TooLarge {
        /// The file.
        path: String,
    },
    /// Not YAML/JSON, or an object Istio would reject; the objects before it are used.
    #[error("--mesh-config {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What and where, escaped, on one line.
        message: String,
    },
}

/// Reads the files; the objects of the good ones (and those before the error in a bad one) are
/// used, each bad file is one error.
pub(crate) fn load(paths: &[PathBuf]) -> (MeshPolicy, Vec<PolicyError>) {
    use std::io::Read;
    let mut policy = MeshPolicy::default();
    let mut errors = Vec::new();
    for p in paths {
        let path = escape_str(&p.display().to_string());
        let mut text = String::new();
        let read =
            std::fs::File::open(p).and_then(|f| f.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text));
        match read {
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => errors.push(PolicyError::Parse {
                path,
                message: "not UTF-8 text (a YAML manifest or `kubectl get -o json` output is expected)"
                    .into(),
            }),
            Err(source) => errors.push(PolicyError::Read { path, source }),
            Ok(n) if n as u64 > MAX_CONFIG_BYTES => errors.push(PolicyError::TooLarge { path }),
            Ok(_) => {
                if let Err(message) = policy.add_text(&text) {
                    errors.push(PolicyError::Parse { path, message });
                }
            }
        }
    }
    (policy, errors)
}

/// One line, escaped: the message of a parse error.
fn one_line(s: &str) -> String {
    escape_str(&s.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut v = v;
    for k in path {
        v = v.get(*k)?;
    }
    v.as_str()
}

/// A port key or number: `8080` or `"8080"`.
fn port_of(v: &Value) -> Option<u16> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn peer_mode(s: Option<&str>) -> Result<PeerMode, String> {
    match s {
        None => Ok(PeerMode::Unset),
        Some(s) => PeerMode::ALL
            .iter()
            .copied()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown mTLS mode '{}'", one_line(s))),
    }
}

fn tls_mode(s: Option<&str>) -> Result<Option<TlsMode>, String> {
    match s {
        None => Ok(None),
        Some(s) => TlsMode::ALL
            .iter()
            .copied()
            .find(|m| m.as_str() == s)
            .map(Some)
            .ok_or_else(|| format!("unknown tls mode '{}'", one_line(s))),
    }
}

impl MeshPolicy {
    /// Adds the objects of one file's text (YAML documents, JSON is YAML too).
    pub(crate) fn add_text(&mut self, text: &str) -> Result<(), String> {
        use serde::Deserialize;
        for doc in yaml_serde::Deserializer::from_str(text) {
            let v = Value::deserialize(doc).map_err(|e| one_line(&e.to_string()))?;
            self.add_value(&v, true)?;
        }
        Ok(())
    }

    fn objects(&self) -> usize {
        self.peer_authentications.len() + self.destination_rules.len()
    }

    /// One object, or a list of them (`kind: List`, `...List`: `items`).
    fn add_value(&mut self, v: &Value, top: bool) -> Result<(), String> {
        if v.is_null() {
            return Ok(()); // an empty document
        }
        if !v.is_mapping() {
            return Err("a document is not an object (a Kubernetes manifest or `kubectl get -o json` output is expected)".into());
        }
        if let (true, Some(items)) = (top, v.get("items").and_then(Value::as_sequence)) {
            for i in items {
                self.add_value(i, false)?;
            }
            return Ok(());
        }
        let api = str_at(v, &["apiVersion"]).unwrap_or("");
        let kind = str_at(v, &["kind"]).unwrap_or("");
        let ours = match kind {
            "PeerAuthentication" => api.starts_with("security.istio.io/"),
            "DestinationRule" => api.starts_with("networking.istio.io/"),
            _ => false,
        };
        if !ours {
            return Ok(()); // other kinds are skipped
        }
        if self.objects() >= MAX_OBJECTS {
            return Err(format!("more than {MAX_OBJECTS} objects; the rest are not read"));
        }
        let name = str_at(v, &["metadata", "name"]).unwrap_or("").to_string();
        let namespace = str_at(v, &["metadata", "namespace"]).unwrap_or(MANIFEST_NAMESPACE).to_string();
        let created = str_at(v, &["metadata", "creationTimestamp"]).map(str::to_string);
        let what = || format!("{kind} {}/{}", one_line(&namespace), one_line(&name));
        let spec = v.get("spec").unwrap_or(&Value::Null);
        if kind == "PeerAuthentication" {
            let mode = peer_mode(str_at(spec, &["mtls", "mode"])).map_err(|e| format!("{}: {e}", what()))?;
            let selector = spec
                .get("selector")
                .and_then(|s| s.get("matchLabels"))
                .and_then(Value::as_mapping)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                        .collect::<BTreeMap<_, _>>()
                })
                .filter(|m| !m.is_empty());
            let mut ports = BTreeMap::new();
            for (k, p) in spec.get("portLevelMtls").and_then(Value::as_mapping).into_iter().flatten() {
                let port =
                    port_of(k).ok_or_else(|| format!("{}: portLevelMtls key is not a port", what()))?;
                let m = peer_mode(str_at(p, &["mode"])).map_err(|e| format!("{}: {e}", what()))?;
                ports.insert(port, m);
            }
            self.peer_authentications.push(PeerAuthentication {
                namespace,
                name,
                created,
                selector,
                mode,
                ports,
            });
        } else {
            let host =
                str_at(spec, &["host"]).ok_or_else(|| format!("{}: no spec.host", what()))?.to_string();
            let policy = spec.get("trafficPolicy").unwrap_or(&Value::Null);
            let tls = tls_mode(str_at(policy, &["tls", "mode"])).map_err(|e| format!("{}: {e}", what()))?;
            let mut ports = BTreeMap::new();
            for s in policy.get("portLevelSettings").and_then(Value::as_sequence).into_iter().flatten() {
                let mode = tls_mode(str_at(s, &["tls", "mode"])).map_err(|e| format!("{}: {e}", what()))?;
                if let (Some(port), Some(mode)) =
                    (s.get("port").and_then(|p| p.get("number")).and_then(port_of), mode)
                {
                    ports.insert(port, mode);
                }
            }
            self.destination_rules.push(DestinationRule { namespace, name, created, host, tls, ports });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> MeshPolicy {
        let mut p = MeshPolicy::default();
        p.add_text(text).unwrap();
        p
    }

    #[test]
    fn kubectl_json_lists_and_unknown_kinds() {
        let p = policy(
            r#"{"apiVersion":"v1","kind":"List","items":[
              {"apiVersion":"security.istio.io/v1","kind":"PeerAuthentication",
               "metadata":{"name":"default","namespace":"istio-system"},"spec":{"mtls":{"mode":"STRICT"}}},
              {"apiVersion":"v1","kind":"Service","metadata":{"name":"reviews","namespace":"default"},"spec":{}},
              {"apiVersion":"networking.istio.io/v1","kind":"DestinationRule",
               "metadata":{"name":"r","namespace":"default"},"spec":{"host":"reviews"}}]}"#,
        );
        assert_eq!((p.peer_authentications.len(), p.destination_rules.len()), (1, 1));
        assert_eq!(p.peer_authentications[0].mode, PeerMode::Strict);
        assert_eq!(p.destination_rules[0].tls, None);
    }

    #[test]
    fn bad_input_is_one_line_and_keeps_what_came_before() {
        let mut p = MeshPolicy::default();
        let e = p
            .add_text(
                "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a}\nspec: {mtls: {mode: STRICT}}\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: b, namespace: x}\nspec: {mtls: {mode: STRIKT}}\n",
            )
            .unwrap_err();
        assert_eq!(e, "PeerAuthentication x/b: unknown mTLS mode 'STRIKT'");
        assert_eq!(p.peer_authentications.len(), 1);
        assert_eq!(p.peer_authentications[0].namespace, "default");
        let e = MeshPolicy::default().add_text("kind: [unclosed\n  \u{1b}[31m").unwrap_err();
        assert!(!e.contains('\n') && !e.contains('\u{1b}'), "{e}");
        assert_eq!(MeshPolicy::default().add_text("- a\n- b\n").unwrap_err().split(' ').next(), Some("a"));
    }

    #[test]
    fn alias_bombs_and_deep_nesting_are_refused() {
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        assert_eq!(MeshPolicy::default().add_text(&bomb).unwrap_err(), "repetition limit exceeded");
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let e = MeshPolicy::default().add_text(&deep).unwrap_err();
        assert!(e.starts_with("recursion limit exceeded"), "{e}");
    }
}
