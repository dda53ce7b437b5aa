//! What a component imports and exports, read from its bytes without compiling it. Validating
//! an 18 MB Python component takes a fraction of a second where compiling it takes tens of
//! seconds, so `agenthost inspect` answers at once, and a deploy refuses an ungranted import
//! before paying for a compilation.

use wasmparser::component_types::ComponentEntityType;
use wasmparser::{BinaryReaderError, Parser, Payload, Validator, WasmFeatures};

/// What a component asks for and offers, for `agenthost inspect`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ComponentInfo {
    pub digest: String,
    pub size: usize,
    pub imports: Vec<InterfaceInfo>,
    pub exports: Vec<InterfaceInfo>,
}

/// One import or export: an interface and the functions it holds (empty for a single
/// function, a type or anything else that is not an instance).
#[derive(Clone, Debug, serde::Serialize)]
pub struct InterfaceInfo {
    pub name: String,
    pub functions: Vec<String>,
}

/// Bytes that are not a valid component, with what the validator said and where.
#[derive(Debug, thiserror::Error)]
#[error("not a valid WebAssembly component: {0}")]
pub struct NotAComponent(#[from] BinaryReaderError);

/// The component's own imports and exports, by name, in their order: those of the modules
/// and components nested inside it are theirs, not the component's.
pub fn names(bytes: &[u8]) -> Result<(Vec<String>, Vec<String>), BinaryReaderError> {
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    // Nested modules and components are parsed inline; only depth 0 is the component itself.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    imports.push(import?.name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    exports.push(export?.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok((imports, exports))
}

/// Imports and exports of the component in `bytes`, with the functions of each interface.
/// The component is validated (with every WebAssembly feature, since this describes rather
/// than admits it: a deploy checks it against the engine's), never compiled.
pub fn describe(bytes: &[u8]) -> Result<ComponentInfo, NotAComponent> {
    let (imports, exports) = names(bytes)?;
    let types = Validator::new_with_features(WasmFeatures::all()).validate_all(bytes)?;
    let functions = |item: Option<&wasmparser::component_types::ComponentItem>| match item {
        Some(item) => match item.ty {
            ComponentEntityType::Instance(id) => types[id]
                .exports
                .iter()
                .filter(|(_, e)| matches!(e.ty, ComponentEntityType::Func(_)))
                .map(|(name, _)| name.clone())
                .collect(),
            _ => Vec::new(),
        },
        None => Vec::new(),
    };
    Ok(ComponentInfo {
        digest: super::digest_of(bytes),
        size: bytes.len(),
        imports: imports
            .iter()
            .map(|name| InterfaceInfo {
                functions: functions(types.component_item_for_import(name)),
                name: name.clone(),
            })
            .collect(),
        exports: exports
            .iter()
            .map(|name| InterfaceInfo {
                functions: functions(types.component_item_for_export(name)),
                name: name.clone(),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component importing an interface of two functions and one of a single function, and
    /// exporting an instance of one function, written in the text format.
    const COMPONENT: &str = r#"
        (component
          (import "acme:tools/math@1.0.0" (instance
            (export "add" (func (param "a" u32) (param "b" u32) (result u32)))
            (export "neg" (func (param "a" s32) (result s32)))))
          (import "tick" (func))
          (component $inner
            (import "nested-only" (func)))
          (core module $m (func (export "go")))
          (core instance $i (instantiate $m))
          (func $go (canon lift (core func $i "go")))
          (instance $api (export "go" (func $go)))
          (export "acme:tools/api@1.0.0" (instance $api)))
    "#;

    #[test]
    fn imports_and_exports_are_read_with_their_functions_without_compiling() {
        let bytes = wat::parse_str(COMPONENT).unwrap();
        let info = describe(&bytes).unwrap();
        let listed = |items: &[InterfaceInfo]| -> Vec<(String, Vec<String>)> {
            items
                .iter()
                .map(|i| (i.name.clone(), i.functions.clone()))
                .collect()
        };
        assert_eq!(
            listed(&info.imports),
            [
                (
                    "acme:tools/math@1.0.0".to_owned(),
                    vec!["add".to_owned(), "neg".to_owned()]
                ),
                ("tick".to_owned(), vec![]),
            ]
        );
        assert_eq!(
            listed(&info.exports),
            [("acme:tools/api@1.0.0".to_owned(), vec!["go".to_owned()])]
        );
        assert_eq!(info.size, bytes.len());
        assert_eq!(info.digest, super::super::digest_of(&bytes));
    }

    #[test]
    fn bytes_that_are_not_a_component_say_so() {
        let err = describe(b"\0asm\x0d\0\x01\0garbage").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("not a valid WebAssembly component: "),
            "{err}"
        );
        assert!(describe(b"not wasm at all").is_err());
    }
}
