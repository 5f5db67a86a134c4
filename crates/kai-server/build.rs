//! Embeds the web dashboard: walks `web/index.html` and `web/ui/**` at the repository root and
//! writes `$OUT_DIR/web_assets.rs`, a sorted table of `(url path, include_bytes!(file))`
//! that `routes::ui` serves. No build step for the front end: the files are embedded as they
//! are written (the browser tests in `web/tests/` are not).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.is_file() {
            out.push(path);
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets this"));
    let web = manifest.join("../../web");
    println!("cargo:rerun-if-changed={}", web.join("index.html").display());
    println!("cargo:rerun-if-changed={}", web.join("ui").display());
    let mut files = Vec::new();
    walk(&web.join("ui"), &mut files);
    let mut table: Vec<(String, PathBuf)> = files
        .into_iter()
        .filter_map(|f| {
            let rel = f.strip_prefix(&web).ok()?.to_str()?.replace('\\', "/");
            let name = f.file_name()?.to_str()?;
            // Editor droppings and hidden files are not part of the app.
            (!name.starts_with('.') && !name.ends_with('~') && !name.ends_with(".swp"))
                .then(|| (format!("/{rel}"), f.clone()))
        })
        .collect();
    if web.join("index.html").is_file() {
        table.push(("/index.html".into(), web.join("index.html")));
    }
    table.sort();
    let mut code = String::from(
        "/// Every embedded file of the dashboard: (URL path, contents), sorted by path.\n\
         pub static ASSETS: &[(&str, &[u8])] = &[\n",
    );
    for (url, file) in &table {
        let file = file.canonicalize().unwrap_or_else(|_| file.clone());
        let _ = writeln!(code, "    ({url:?}, include_bytes!({:?})),", file.display().to_string());
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets this"));
    std::fs::write(out.join("web_assets.rs"), code).expect("OUT_DIR is writable");
}
