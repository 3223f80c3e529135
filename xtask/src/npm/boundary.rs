//! Short names on the JS/wasm boundary.
//!
//! wasm-bindgen names each import after the JS it calls plus a hash
//! (`__wbg_instanceof_MessageEvent_7f71d71db210f737`, from the module `./ws_lifeline_bg.js`) and
//! each export after the Rust item (`lifelinesocket_set_onmessage`). Every name is stored twice:
//! in the wasm's import or export section and in the glue. wasm-opt's
//! `--minify-imports-and-exports-and-modules` renames them all to one- or two-character names
//! and prints the mapping; [`Mapping`] reads it, checks it against the wasm, and applies it to
//! the glue as wasm-bindgen wrote it (where the exports object is always the variable `wasm`),
//! before rolldown minifies it. [`check_minified_glue`] then proves no old name is left.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use wasm_encoder::{ExportSection, Module, RawSection};
use wasmparser::{Export, Import, Parser, Payload, TypeRef};

use crate::Result;

/// Exports that keep their names: `init()` and `initSync()` return the exports object, and
/// `InitOutput` in index.d.ts promises its `memory`.
const PUBLIC_EXPORTS: [&str; 1] = ["memory"];

/// The glue's variable holding the wasm exports (`wasm = instance.exports`).
const EXPORTS_OBJECT: &str = "wasm";

/// wasm-opt's renames, old name to new.
#[derive(Debug, Default)]
pub(super) struct Mapping {
    /// The import modules the wasm had; wasm-opt merges them into one.
    modules: BTreeSet<String>,
    /// Import base names (unique across modules, which merging them requires).
    imports: BTreeMap<String, String>,
    /// Export names, less [`PUBLIC_EXPORTS`] once [`Mapping::restore_public_exports`] ran.
    exports: BTreeMap<String, String>,
}

impl Mapping {
    /// Reads what wasm-opt prints:
    /// `{"imports": [[module, old, new], ...], "exports": [[old, new], ...]}`, once per round
    /// of `--converge`; later rounds rename the new names again, so the rounds are composed.
    pub(super) fn parse(json: &str) -> Result<Self> {
        let mut rounds = serde_json::Deserializer::from_str(json).into_iter::<serde_json::Value>();
        let first = rounds
            .next()
            .ok_or_else(|| "wasm-opt printed no name mapping".to_string())?
            .map_err(|e| format!("wasm-opt's name mapping is not JSON ({e}): {json}"))?;
        let mut mapping = Self::parse_round(&first)?;
        for round in rounds {
            let round =
                round.map_err(|e| format!("wasm-opt's name mapping is not JSON ({e}): {json}"))?;
            let round = Self::parse_round(&round)?;
            for new in mapping.imports.values_mut() {
                if let Some(newer) = round.imports.get(new) {
                    new.clone_from(newer);
                }
            }
            for new in mapping.exports.values_mut() {
                if let Some(newer) = round.exports.get(new) {
                    new.clone_from(newer);
                }
            }
        }
        Ok(mapping)
    }

    /// One round's mapping.
    fn parse_round(value: &serde_json::Value) -> Result<Self> {
        let rows = |key: &str, width: usize| -> Result<Vec<Vec<String>>> {
            let rows = value
                .get(key)
                .and_then(serde_json::Value::as_array)
                .ok_or_else(|| format!("wasm-opt's name mapping has no `{key}` array"))?;
            rows.iter()
                .map(|row| {
                    let cells: Option<Vec<String>> = row.as_array().and_then(|cells| {
                        cells
                            .iter()
                            .map(|cell| cell.as_str().map(str::to_string))
                            .collect()
                    });
                    cells.filter(|cells| cells.len() == width).ok_or_else(|| {
                        format!("wasm-opt's `{key}` row {row} is not {width} strings")
                    })
                })
                .collect()
        };
        let mut mapping = Self::default();
        for row in rows("imports", 3)? {
            let [module, old, new] = <[String; 3]>::try_from(row).unwrap_or_default();
            mapping.modules.insert(module);
            if mapping.imports.insert(old.clone(), new).is_some() {
                return Err(format!(
                    "two import modules both provide `{old}`: they cannot be merged into one"
                ));
            }
        }
        for row in rows("exports", 2)? {
            let [old, new] = <[String; 2]>::try_from(row).unwrap_or_default();
            if mapping.exports.insert(old.clone(), new).is_some() {
                return Err(format!("wasm-opt's mapping names the export `{old}` twice"));
            }
        }
        let news: Vec<&String> = mapping
            .imports
            .values()
            .chain(mapping.exports.values())
            .collect();
        if news.iter().collect::<BTreeSet<_>>().len() != news.len() {
            return Err("wasm-opt gave two imports or exports the same new name".into());
        }
        Ok(mapping)
    }

    /// Gives the [`PUBLIC_EXPORTS`] back their names in `wasm`, and drops them from the mapping.
    pub(super) fn restore_public_exports(&mut self, wasm: &[u8]) -> Result<Vec<u8>> {
        let mut renames = BTreeMap::new();
        for name in PUBLIC_EXPORTS {
            if let Some(minified) = self.exports.remove(name) {
                renames.insert(minified, name.to_string());
            }
        }
        rename_exports(wasm, &renames)
    }

    /// Checks the mapping against the wasm wasm-opt wrote: one import module, and every import
    /// and export named as the mapping says. Returns the import module's new name.
    pub(super) fn check_against(&self, wasm: &[u8]) -> Result<String> {
        let WasmNames { imports, exports } = WasmNames::read(wasm)?;
        let modules: BTreeSet<&str> = imports.iter().map(|(module, _)| module.as_str()).collect();
        let [module] =
            <[&str; 1]>::try_from(modules.into_iter().collect::<Vec<_>>()).map_err(|modules| {
                format!("the minified wasm imports from {modules:?}, not one module")
            })?;
        if self.modules.len() != 1 {
            return Err(format!(
                "the wasm imported from {:?}; the glue has one import object to rename",
                self.modules
            ));
        }
        let expected: BTreeSet<&str> = self.imports.values().map(String::as_str).collect();
        let found: BTreeSet<&str> = imports.iter().map(|(_, base)| base.as_str()).collect();
        if expected != found || found.len() != imports.len() {
            return Err(format!(
                "the minified wasm's imports {found:?} are not the mapping's {expected:?}"
            ));
        }
        let mut expected: BTreeSet<&str> = self.exports.values().map(String::as_str).collect();
        expected.extend(
            PUBLIC_EXPORTS
                .iter()
                .copied()
                .filter(|name| exports.iter().any(|e| e.as_str() == *name)),
        );
        let found: BTreeSet<&str> = exports.iter().map(String::as_str).collect();
        if expected != found {
            return Err(format!(
                "the minified wasm's exports {found:?} are not the mapping's {expected:?}"
            ));
        }
        Ok(module.to_string())
    }

    /// Renames, in the glue as wasm-bindgen wrote it, the import object's module key, each import
    /// (a key of that object, once) and each `wasm.<export>`. Fails on anything it cannot rename
    /// exactly: an import missing or named twice, a `wasm.<name>` that is no export.
    pub(super) fn rewrite_glue(&self, glue: &str, new_module: &str) -> Result<String> {
        let mut edits: Vec<(Range<usize>, &str)> = Vec::new();
        let mut import_uses: BTreeMap<&str, usize> = BTreeMap::new();
        for word in identifiers(glue) {
            let name = &glue[word.clone()];
            if let Some(new) = self.imports.get(name) {
                if !glue[word.end..].trim_start().starts_with(':') {
                    return Err(format!(
                        "the glue names the import `{name}` other than as a key of the import \
                         object: {}",
                        context(glue, &word)
                    ));
                }
                *import_uses.entry(name).or_default() += 1;
                edits.push((word, new));
            } else if name == EXPORTS_OBJECT
                && !glue[..word.start].ends_with('.')
                && glue[word.end..].starts_with('.')
            {
                let start = word.end + 1;
                let end = glue[start..]
                    .find(|c| !is_identifier_char(c))
                    .map_or(glue.len(), |n| start + n);
                let export = &glue[start..end];
                if export.is_empty() || PUBLIC_EXPORTS.contains(&export) {
                    continue;
                }
                let new = self.exports.get(export).ok_or_else(|| {
                    format!(
                        "the glue reads `{EXPORTS_OBJECT}.{export}`, which is no export of the \
                         wasm: {}",
                        context(glue, &word)
                    )
                })?;
                edits.push((start..end, new));
            }
        }
        for old in self.imports.keys() {
            match import_uses.get(old.as_str()) {
                Some(1) => {}
                Some(n) => return Err(format!("the glue's import object has `{old}` {n} times")),
                None => return Err(format!("the glue's import object has no `{old}`")),
            }
        }
        let mut out = String::with_capacity(glue.len());
        let mut at = 0;
        for (range, new) in edits {
            if range.start < at {
                return Err(format!("overlapping renames at {}", context(glue, &range)));
            }
            out.push_str(&glue[at..range.start]);
            out.push_str(new);
            at = range.end;
        }
        out.push_str(&glue[at..]);
        // The import object's key for the one module (checked by `check_against`).
        for old in &self.modules {
            let quoted = format!("\"{old}\"");
            match out.matches(&quoted).count() {
                1 => out = out.replacen(&quoted, &format!("\"{new_module}\""), 1),
                n => return Err(format!("the glue has {quoted} {n} times, not once")),
            }
        }
        Ok(out)
    }
}

/// Fails if the minified glue still holds an old name: a module or import name anywhere, or an
/// export name as an identifier (property, key or variable). Only the module's own `export{...}`
/// clause may repeat one, since the package's JS API (`isLifelineError`, `liveResources`) shares
/// names with the wasm exports that implement it.
pub(super) fn check_minified_glue(glue: &str, mapping: &Mapping) -> Result {
    let mut left: BTreeSet<&str> = mapping
        .modules
        .iter()
        .chain(mapping.imports.keys())
        .filter(|old| glue.contains(old.as_str()))
        .map(String::as_str)
        .collect();
    let clause = glue
        .rfind("export{")
        .and_then(|start| glue[start..].find('}').map(|end| start..start + end + 1));
    for word in identifiers(glue) {
        if clause.as_ref().is_some_and(|c| c.contains(&word.start)) {
            continue;
        }
        if let Some((old, _)) = mapping.exports.get_key_value(&glue[word]) {
            left.insert(old);
        }
    }
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the minified glue still uses wasm names that wasm-opt renamed: {left:?}"
        ))
    }
}

fn is_identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

/// Byte ranges of the maximal runs of identifier characters (so numbers are words too).
fn identifiers(text: &str) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let start = at + text[at..].find(is_identifier_char)?;
        let end = text[start..]
            .find(|c| !is_identifier_char(c))
            .map_or(text.len(), |n| start + n);
        at = end;
        Some(start..end)
    })
}

/// The line around `range`, for error messages.
fn context(text: &str, range: &Range<usize>) -> String {
    let start = text[..range.start].rfind('\n').map_or(0, |n| n + 1);
    let end = text[range.end..]
        .find('\n')
        .map_or(text.len(), |n| range.end + n);
    format!("`{}`", text[start..end].trim())
}

// ---------------------------------------------------------------------------------------------
// The wasm binary: read with wasmparser, the export section rewritten with wasm-encoder.
// ---------------------------------------------------------------------------------------------

/// The names on the wasm's side of the boundary.
#[derive(Debug, Default)]
struct WasmNames {
    /// `(module, name)` of each import.
    imports: Vec<(String, String)>,
    exports: Vec<String>,
}

impl WasmNames {
    /// Only function imports are expected: the only kind wasm-bindgen's output imports without
    /// threads.
    fn read(wasm: &[u8]) -> Result<Self> {
        let mut names = Self::default();
        for payload in Parser::new(0).parse_all(wasm) {
            match payload.map_err(malformed)? {
                Payload::ImportSection(section) => {
                    for import in section.into_imports() {
                        let Import { module, name, ty } = import.map_err(malformed)?;
                        if !matches!(ty, TypeRef::Func(_)) {
                            return Err(format!(
                                "the wasm imports {module}.{name} as {ty:?}; only functions are \
                                 expected"
                            ));
                        }
                        names.imports.push((module.to_string(), name.to_string()));
                    }
                }
                Payload::ExportSection(section) => {
                    for export in section {
                        let Export { name, .. } = export.map_err(malformed)?;
                        names.exports.push(name.to_string());
                    }
                }
                _ => {}
            }
        }
        Ok(names)
    }
}

/// `wasm` with exports renamed (old name to new); each rename must apply to one export, and
/// the names stay unique. Every other section is copied byte for byte.
fn rename_exports(wasm: &[u8], renames: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    if renames.is_empty() {
        return Ok(wasm.to_vec());
    }
    let mut module = Module::new();
    let mut applied = 0;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(malformed)? {
            Payload::ExportSection(exports) => {
                let mut section = ExportSection::new();
                let mut names = BTreeSet::new();
                for export in exports {
                    let Export { name, kind, index } = export.map_err(malformed)?;
                    let name = renames.get(name).map_or(name, |new| {
                        applied += 1;
                        new.as_str()
                    });
                    if !names.insert(name) {
                        return Err(format!("renaming exports would name two `{name}`"));
                    }
                    section.export(name, kind.into(), index);
                }
                module.section(&section);
            }
            payload => {
                // Offsets into `wasm`, so they fit in a usize.
                if let Some((id, range)) = payload.as_section() {
                    let data = &wasm[range.start as usize..range.end as usize];
                    module.section(&RawSection { id, data });
                }
            }
        }
    }
    if applied != renames.len() {
        return Err(format!("could not rename the exports {renames:?}"));
    }
    Ok(module.finish())
}

fn malformed(e: wasmparser::BinaryReaderError) -> String {
    format!("the wasm does not parse: {e}")
}

#[cfg(test)]
mod tests {
    use wasm_encoder::{
        CustomSection, EntityType, ExportKind, ImportSection, MemorySection, MemoryType,
        TypeSection,
    };

    use super::*;

    /// A module importing `./m.js`.`f_hash` and exporting `memory` and `run`, then the same
    /// renamed as wasm-opt would: imports from `a`.`a`, exports `b` and `c`. A custom section
    /// follows the exports, to be copied as it is.
    fn module(module: &str, import: &str, exports: [&str; 2]) -> Vec<u8> {
        let mut types = TypeSection::new();
        types.ty().function([], []);
        let mut imports = ImportSection::new();
        imports.import(module, import, EntityType::Function(0));
        let mut memories = MemorySection::new();
        memories.memory(MemoryType {
            minimum: 1,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        let mut export_section = ExportSection::new();
        export_section
            .export(exports[0], ExportKind::Memory, 0)
            .export(exports[1], ExportKind::Func, 0);
        let custom = CustomSection {
            name: "producers".into(),
            data: b"\x00".as_slice().into(),
        };
        let mut wasm = Module::new();
        wasm.section(&types)
            .section(&imports)
            .section(&memories)
            .section(&export_section)
            .section(&custom);
        wasm.finish()
    }

    const MAPPING: &str = r#"{
 "imports": [
  ["./m.js", "__wbg_f_0123456789abcdef", "a"]
 ],
"exports": [
  ["memory", "b"],
  ["thing_run", "c"]
 ]
}"#;

    const GLUE: &str = r#"
/** Calls wasm.thing_run. */
export function run() { wasm.thing_run(); return wasm.memory.buffer; }
function __wbg_get_imports() {
    const import0 = {
        __proto__: null,
        __wbg_f_0123456789abcdef: function() { wasm.thing_run(); },
    };
    return { __proto__: null, "./m.js": import0 };
}
let wasm;
"#;

    #[test]
    fn converge_rounds_are_composed() {
        let rounds = r#"{"imports": [["./m.js", "__wbg_a_1", "b"]], "exports": [["socket_new", "C"]]}
{"imports": [["b", "b", "a"]], "exports": [["C", "A"]]}
{"imports": [["a", "a", "a"]], "exports": [["A", "A"]]}"#;
        let mapping = Mapping::parse(rounds).unwrap();
        assert_eq!(mapping.imports["__wbg_a_1"], "a");
        assert_eq!(mapping.exports["socket_new"], "A");
        assert!(mapping.modules.contains("./m.js"));
        assert!(Mapping::parse("").is_err());
    }

    #[test]
    fn renames_the_boundary_in_wasm_and_glue() {
        let mut mapping = Mapping::parse(MAPPING).unwrap();
        let wasm = module("a", "a", ["b", "c"]);
        let wasm = mapping.restore_public_exports(&wasm).unwrap();
        assert_eq!(wasm, module("a", "a", ["memory", "c"]));
        assert_eq!(mapping.check_against(&wasm).unwrap(), "a");
        let glue = mapping.rewrite_glue(GLUE, "a").unwrap();
        assert_eq!(
            glue,
            GLUE.replace("wasm.thing_run", "wasm.c")
                .replace("__wbg_f_0123456789abcdef", "a")
                .replace("\"./m.js\"", "\"a\"")
        );
        let minified = "function r(){A.c();return A.memory.buffer}let A;export{r as run};";
        check_minified_glue(minified, &mapping).unwrap();
        let minified = "function r(){A.c()}let A;export{r as thing_run};";
        check_minified_glue(minified, &mapping).unwrap();
    }

    #[test]
    fn fails_on_what_it_cannot_rename_exactly() {
        let mapping = Mapping::parse(MAPPING).unwrap();
        let twice = GLUE.replace("let wasm;", "let wasm; __wbg_f_0123456789abcdef: 1");
        assert!(mapping.rewrite_glue(&twice, "a").is_err());
        let called = GLUE.replace("let wasm;", "let wasm; __wbg_f_0123456789abcdef();");
        assert!(mapping.rewrite_glue(&called, "a").is_err());
        let unknown = GLUE.replace("let wasm;", "let wasm; wasm.other();");
        assert!(mapping.rewrite_glue(&unknown, "a").is_err());
        let missing = GLUE.replace("__wbg_f_0123456789abcdef", "other");
        assert!(mapping.rewrite_glue(&missing, "a").is_err());
        for left in [
            "A.thing_run()",
            "A[\"thing_run\"]()",
            "let{thing_run:r}=A",
            "x=`./m.js`",
            "x.__wbg_f_0123456789abcdef",
        ] {
            assert!(check_minified_glue(left, &mapping).is_err(), "{left}");
        }
    }

    #[test]
    fn checks_the_wasm_against_the_mapping() {
        let mut mapping = Mapping::parse(MAPPING).unwrap();
        let wasm = mapping
            .restore_public_exports(&module("a", "a", ["b", "c"]))
            .unwrap();
        assert!(
            mapping
                .check_against(&module("a", "z", ["memory", "c"]))
                .is_err()
        );
        assert!(
            mapping
                .check_against(&module("a", "a", ["memory", "d"]))
                .is_err()
        );
        assert!(mapping.check_against(&wasm).is_ok());
        let truncated = &wasm[..wasm.len() - 1];
        assert!(mapping.check_against(truncated).is_err());
        let mut mapping = Mapping::parse(MAPPING).unwrap();
        assert!(mapping.restore_public_exports(truncated).is_err());
    }
}
