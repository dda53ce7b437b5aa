//! Rust projects (a `Cargo.toml`): cargo builds them for `wasm32-wasip2` in release mode; the
//! target is added with rustup when it is missing, as `cargo xtask plugins` does. The SDK
//! crate carries the WIT, so nothing is staged.

use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const TARGET: &str = "wasm32-wasip2";

/// `cargo build` of the project for wasm32-wasip2; the component it produced. cargo's own
/// output (progress, warnings, errors) goes to the terminal as it comes.
pub fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    ensure_target()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .args(["build", "--release", "--target", TARGET])
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", Path::new(&cargo).display()))?;
    if !output.status.success() {
        bail!(
            "cargo build failed ({}); its errors are above",
            output.status
        );
    }
    component_of(&String::from_utf8_lossy(&output.stdout)).with_context(|| {
        format!(
            "cargo built no .wasm in {}: is its [lib] crate-type [\"cdylib\"]?",
            dir.display()
        )
    })
}

/// The `.wasm` of the last cdylib among cargo's JSON messages.
fn component_of(messages: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"))
        })
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
                .collect::<Vec<_>>()
        })
        .rfind(|f| f.extension().is_some_and(|e| e == "wasm"))
}

/// Adds the wasm32-wasip2 target with rustup when it is missing. Without rustup, cargo's
/// error says what is missing.
fn ensure_target() -> anyhow::Result<()> {
    let Ok(installed) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        return Ok(());
    };
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|t| t.trim() == TARGET)
    {
        return Ok(());
    }
    eprintln!("adding the {TARGET} target (rustup target add {TARGET})");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .context("cannot run rustup")?;
    if !status.success() {
        bail!("rustup target add {TARGET} failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_component_is_the_cdylibs_wasm() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","target":{"kind":["lib"]},"filenames":["/t/libserde.rlib"]}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"kind":["cdylib"]},"filenames":["/t/wasm32-wasip2/release/price_watch.wasm"]}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
        );
        assert_eq!(
            component_of(messages),
            Some(PathBuf::from("/t/wasm32-wasip2/release/price_watch.wasm"))
        );
        assert_eq!(component_of(r#"{"reason":"build-finished"}"#), None);
    }
}
