//! The TypeScript protocol types of the npm package cannot drift from the serde types.
//!
//! `client-wasm/js/protocol.d.ts` is generated from this crate's types by ts-rs (which reads
//! the serde attributes: tags, renames, optional fields) and committed; `index.d.ts` builds
//! the package's typed events on it. This test regenerates the text and fails when the file
//! differs. After changing a wire type, rerun with `UPDATE_TS_TYPES=1` and commit the result.
#![cfg(feature = "ts")]

use lifeline_protocol::{ClientMsg, ErrorCode, Limits, RoomInfo, ServerMsg, Since};
use ts_rs::{Config, TS};

const HEADER: &str = "\
// Protocol v1 wire types, generated from the Rust crate `lifeline-protocol` by ts-rs.
// Do not edit: `cargo test -p lifeline-protocol --features ts` checks this file, and
// `UPDATE_TS_TYPES=1` with the same command rewrites it.
// u64 fields (ids, offsets, timestamps) are JSON numbers, exact up to 2^53 - 1.
";

fn generated() -> String {
    let cfg = Config::new().with_large_int("number");
    let decls = [
        <serde_json::Value as TS>::decl(&cfg),
        Since::decl(&cfg),
        <ClientMsg>::decl(&cfg),
        RoomInfo::decl(&cfg),
        Limits::decl(&cfg),
        ErrorCode::decl(&cfg),
        <ServerMsg>::decl(&cfg),
    ];
    let mut out = String::from(HEADER);
    for decl in decls {
        out.push('\n');
        out.push_str("export ");
        out.push_str(decl.trim());
        out.push('\n');
    }
    out
}

#[test]
fn npm_protocol_types_match_the_serde_types() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../client-wasm/js/protocol.d.ts");
    let want = generated();
    if std::env::var_os("UPDATE_TS_TYPES").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "client-wasm/js/protocol.d.ts is stale: rerun with UPDATE_TS_TYPES=1.\n--- generated ---\n{want}"
    );
}
