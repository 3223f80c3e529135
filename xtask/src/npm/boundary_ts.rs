//! The event part of `client-wasm/js/index.d.ts`, generated from the `page_events!` table in
//! `client-wasm/src/js/boundary.rs` (parsed by [`super::boundary_js`]).
//!
//! The generated text sits between two marker lines of the otherwise hand-written
//! `index.d.ts`, where every type the fields name is in scope. Each event kind becomes an
//! interface with its fields as `readonly` properties, and the kinds fill
//! `LifelineSocketEventMap` and (rooms-only ones) `LifelineRoomEventMap`. `socket.d.ts` (the
//! entry without rooms) re-exports the socket events' interfaces from a generated region of its
//! own. The test below fails when a committed region is stale.

use super::boundary_js::{Field, SOURCE, Variant, lower_camel, source_text, tables};
use crate::Result;

/// The declarations, relative to the workspace root.
const DECLARATIONS: &str = "client-wasm/js/index.d.ts";
/// The socket entry's declarations (without rooms), relative to the workspace root.
const SOCKET_DECLARATIONS: &str = "client-wasm/js/socket.d.ts";
/// The line that opens the generated region.
const BEGIN: &str =
    "// ---- generated from client-wasm/src/js/boundary.rs by `cargo xtask package` ----";
/// The line that closes it.
const END: &str = "// ---- end of the generated part ----";
/// Lines are wrapped to this width, as in the hand-written declarations.
const WIDTH: usize = 100;

/// Rewrites the generated regions of `index.d.ts` and `socket.d.ts` if their text changed.
pub(super) fn write() -> Result {
    for (file, region) in generate(&source_text()?)? {
        let path = crate::root().join(file);
        let old = std::fs::read_to_string(&path).map_err(|e| format!("reading {file}: {e}"))?;
        let new = with_region(file, &old, &region)?;
        if new != old {
            std::fs::write(&path, new).map_err(|e| format!("writing {file}: {e}"))?;
            println!("xtask: regenerated the event part of {file} from {SOURCE}");
        }
    }
    Ok(())
}

/// `text` of `file` with the lines between its markers replaced by `region`.
fn with_region(file: &str, text: &str, region: &str) -> Result<String> {
    let missing = || format!("{file} lacks the marker lines of its generated region");
    let begin = text.find(BEGIN).ok_or_else(missing)? + BEGIN.len() + 1;
    let end = begin + text[begin..].find(END).ok_or_else(missing)?;
    Ok(format!("{}{region}{}", &text[..begin], &text[end..]))
}

/// One event interface: the variants it serves (more than one where `interface` is shared).
struct Interface<'a> {
    name: String,
    variants: Vec<&'a Variant>,
}

impl Interface<'_> {
    fn setting(&self, key: &str) -> Option<&str> {
        let first = self.variants[0];
        let mut pairs = first.ts.iter();
        pairs.find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// The generated regions for the table in `source`: each file with its region.
fn generate(source: &str) -> Result<[(&'static str, String); 2]> {
    let tables = tables(source)?;
    let Some(events) = tables.iter().find(|t| t.name == "PageEvent") else {
        return Err(format!("{SOURCE} has no `page_events!` table"));
    };
    let mut interfaces: Vec<Interface<'_>> = Vec::new();
    for variant in &events.variants {
        for (key, _) in &variant.ts {
            if !["interface", "extends", "generic"].contains(&key.to_string().as_str()) {
                return Err(format!("{}: unknown `ts` setting `{key}`", variant.name));
            }
        }
        let name = match variant.ts.iter().find(|(k, _)| k == "interface") {
            Some((_, name)) => name.clone(),
            None => format!("Lifeline{}Event", variant.name),
        };
        match interfaces.iter_mut().find(|i| i.name == name) {
            Some(shared) => shared.variants.push(variant),
            None => interfaces.push(Interface {
                name,
                variants: vec![variant],
            }),
        }
    }
    let mut ts = String::new();
    for interface in &interfaces {
        ts.push('\n');
        ts.push_str(&declare(interface)?);
    }
    let map = |wanted: fn(&Variant) -> bool| {
        let entries = events.variants.iter().filter(|v| wanted(v));
        let entries = entries.map(|v| {
            let interface = interfaces
                .iter()
                .find(|i| i.variants.iter().any(|w| w.name == v.name));
            let name = interface.map_or("", |i| i.name.as_str());
            format!("  {}: {name};\n", lower_camel(&v.name.to_string()))
        });
        entries.collect::<String>()
    };
    ts.push_str(&format!(
        "\n/** The socket's events by type: those of `WebSocket` and the resilience events. */\n\
         export interface LifelineSocketEventMap {{\n{}}}\n",
        map(|v| !v.rooms_only && !v.persist_only)
    ));
    ts.push_str(&format!(
        "\n/** Protocol v1 (rooms) event types and the event each one delivers. The first listener \
         for any\n * of them starts the rooms layer, as do join, leave, publish and listRooms. */\n\
         export interface LifelineRoomEventMap {{\n{}}}\n",
        map(|v| v.rooms_only)
    ));
    ts.push_str(&format!(
        "\n/** The persistent outbox's event types (the `ws-lifeline/persist` entry only). */\n\
         export interface LifelineOutboxEventMap {{\n{}}}\n\n",
        map(|v| v.persist_only)
    ));
    let socket_events = interfaces
        .iter()
        .filter(|i| i.variants.iter().all(|v| !v.rooms_only && !v.persist_only));
    let names = socket_events
        .map(|i| format!("  {},\n", i.name))
        .collect::<String>();
    let socket =
        format!("export type {{\n{names}  LifelineSocketEventMap,\n}} from \"../index.js\";\n");
    Ok([(DECLARATIONS, ts), (SOCKET_DECLARATIONS, socket)])
}

/// The interface of one event kind.
fn declare(interface: &Interface<'_>) -> Result<String> {
    let types: Vec<String> = interface
        .variants
        .iter()
        .map(|v| format!("\"{}\"", lower_camel(&v.name.to_string())))
        .collect();
    let base = format!("LifelineEventBase<{}>", types.join(" | "));
    let generic = interface.setting("generic").map(|g| format!("<{g}>"));
    let head = format!(
        "export interface {}{}",
        interface.name,
        generic.unwrap_or_default()
    );
    let doc = interface
        .variants
        .iter()
        .map(|v| v.doc.as_str())
        .find(|d| !d.is_empty());
    let mut ts = doc.map(|d| comment(d, "")).unwrap_or_default();
    match interface.setting("extends") {
        Some(extends) => ts.push_str(&format!("{head}\n  extends {extends},\n    {base} {{\n")),
        None if head.len() + base.len() + 11 > WIDTH => {
            ts.push_str(&format!("{head}\n  extends {base} {{\n"))
        }
        None => ts.push_str(&format!("{head} extends {base} {{\n")),
    }
    let fields = interface.variants[0].fields.as_deref().unwrap_or_default();
    if fields.is_empty() {
        ts.push_str("}\n");
        return Ok(ts.replace(" {\n}\n", " {}\n"));
    }
    let mut done: Vec<&str> = Vec::new();
    for field in fields {
        match field.into.as_deref().map(|into| into.split_once('.')) {
            None => {
                ts.push_str(&comment(&field.doc, "  "));
                let name = lower_camel(&field.name.to_string());
                ts.push_str(&format!("  readonly {name}: {};\n", field.ts_type));
            }
            Some(Some((object, _))) if done.contains(&object) => {}
            Some(Some((object, _))) => {
                done.push(object);
                ts.push_str(&folded(object, fields)?);
            }
            Some(None) => {
                return Err(format!("{}: `into` is `object.property`", field.name));
            }
        }
    }
    ts.push_str("}\n");
    Ok(ts)
}

/// The property `object` that `index.js` folds the fields `into` it into.
fn folded(object: &str, fields: &[Field]) -> Result<String> {
    let mut doc = "";
    let mut properties = Vec::new();
    for field in fields {
        let Some((of, property)) = field.into.as_deref().and_then(|i| i.split_once('.')) else {
            continue;
        };
        if of == object {
            if doc.is_empty() {
                doc = &field.doc;
            }
            properties.push(format!("readonly {property}: {}", field.ts_type));
        }
    }
    let line = format!("  readonly {object}: {{ {} }};\n", properties.join("; "));
    Ok(comment(doc, "  ") + &line)
}

/// `text` as a `/** */` comment indented by `indent`, wrapped to [`WIDTH`]; "" for no text.
pub(super) fn comment(text: &str, indent: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    let one_line = format!("{indent}/** {text} */\n");
    if one_line.len() <= WIDTH + 1 {
        return one_line;
    }
    let mut out = format!("{indent}/**\n");
    let mut line = format!("{indent} *");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > WIDTH && line.len() > indent.len() + 2 {
            out.push_str(&line);
            out.push('\n');
            line = format!("{indent} *");
        }
        line.push(' ');
        line.push_str(word);
    }
    out + &line + "\n" + indent + " */\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_event_declarations_are_current() {
        let regions = generate(&source_text().expect("the table reads")).expect("the table parses");
        for (file, region) in regions {
            let path = crate::root().join(file);
            let committed = std::fs::read_to_string(path).expect("the declarations are committed");
            let fresh = with_region(file, &committed, &region).expect("the markers are there");
            assert!(
                committed == fresh,
                "the event part of {file} is stale: run `cargo xtask package` to regenerate it \
                 from {SOURCE}"
            );
        }
    }

    #[test]
    fn events_become_interfaces_and_map_entries() {
        let source = r#"
            page_events! {
                enum PageEvent {
                    /// Opened.
                    Open { protocol: "string" },
                    #[ts(interface = "LifelineNetworkEvent")]
                    Offline {},
                    #[ts(interface = "LifelineNetworkEvent")]
                    Online {},
                    #[cfg(feature = "rooms")]
                    #[ts(generic = "T = unknown")]
                    Recovery {
                        /// Resumed after.
                        #[ts(into = "since.epoch")]
                        since_epoch: "string",
                        #[ts(into = "since.offset")]
                        since_offset: "number",
                        data: "T",
                    },
                }
            }
        "#;
        let [(_, ts), (_, socket)] = generate(source).expect("parses");
        assert!(ts.contains(
            "/** Opened. */\nexport interface LifelineOpenEvent extends \
             LifelineEventBase<\"open\"> {\n  readonly protocol: string;\n}\n"
        ));
        assert!(ts.contains(
            "export interface LifelineNetworkEvent extends LifelineEventBase<\"offline\" | \
             \"online\"> {}\n"
        ));
        assert!(ts.contains(
            "export interface LifelineRecoveryEvent<T = unknown> extends \
             LifelineEventBase<\"recovery\"> {\n  /** Resumed after. */\n  readonly since: { \
             readonly epoch: string; readonly offset: number };\n  readonly data: T;\n}\n"
        ));
        assert!(ts.contains(
            "LifelineSocketEventMap {\n  open: LifelineOpenEvent;\n  offline: \
             LifelineNetworkEvent;\n  online: LifelineNetworkEvent;\n}\n"
        ));
        assert!(ts.contains("LifelineRoomEventMap {\n  recovery: LifelineRecoveryEvent;\n}\n"));
        assert_eq!(
            socket,
            "export type {\n  LifelineOpenEvent,\n  LifelineNetworkEvent,\n  \
             LifelineSocketEventMap,\n} from \"../index.js\";\n"
        );
    }

    #[test]
    fn an_unknown_setting_is_refused() {
        let source = r#"
            page_events! {
                enum PageEvent {
                    #[ts(name = "Open")]
                    Open { protocol: "string" },
                }
            }
        "#;
        let error = generate(source).err().unwrap_or_default();
        assert!(error.contains("unknown `ts` setting `name`"), "{error}");
    }
}
