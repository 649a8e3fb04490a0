//! Writes the provider's reference pages (docs/) from its schemas: `make docs`.

use std::path::PathBuf;

use strata_provider::docs::pages;
use strata_provider::provider::StrataProvider;

fn main() -> std::io::Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "docs".into()));
    let examples = PathBuf::from(std::env::args().nth(2).unwrap_or_else(|| "examples".into()));
    let pages = pages(&StrataProvider, &examples).map_err(std::io::Error::other)?;
    for (rel, text) in pages {
        let path = out.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, text)?;
        println!("{}", path.display());
    }
    Ok(())
}
