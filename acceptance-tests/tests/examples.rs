//! Every example under examples/ is valid for the provider as built: `terraform validate`
//! with real Terraform, and `terraform fmt` finds nothing to change. The registry-layout
//! files (provider/, resources/, data-sources/) are what the docs pages show; the complete
//! configurations (every other directory with a main.tf) are what users start from.

use std::path::{Path, PathBuf};

use strata_acceptance_tests::provider::provider_dir;
use strata_acceptance_tests::terraform::{Workdir, REQUIRED_PROVIDERS};

fn examples_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// The .tf files of one example directory, concatenated: one Terraform module.
fn module_text(dir: &Path) -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tf"))
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read_to_string(p).unwrap() + "\n").collect()
}

/// A registry-layout snippet may use a resource another snippet declares (a worker
/// joins the control plane of the control plane's example): those are added, so each
/// page's example validates as the reader would combine them.
fn with_referenced_examples(mut text: String, dirs: &mut Vec<PathBuf>) -> String {
    let reference = regex::Regex::new(r"(?m)(?:^|[^.\w])strata_(\w+)\.(\w+)").unwrap();
    loop {
        let missing = reference.captures_iter(&text).find_map(|c| {
            let declared = format!("resource \"strata_{}\" \"{}\"", &c[1], &c[2]);
            let dir = examples_root().join(format!("resources/strata_{}", &c[1]));
            // A snippet added already that still lacks the name (another name there) is
            // not added again: validate then reports the undeclared resource.
            (!text.contains(&declared) && dir.join("resource.tf").is_file() && !dirs.contains(&dir)).then_some(dir)
        });
        match missing {
            Some(dir) => {
                text.push_str(&std::fs::read_to_string(dir.join("resource.tf")).unwrap());
                dirs.push(dir);
            }
            None => return text,
        }
    }
}

/// Copies the files beside an example's .tf files (e.g. a CNI manifest it reads) into `to`.
fn copy_support_files(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
            copy_support_files(&src, &dst);
        } else if src.extension().is_none_or(|x| x != "tf" && x != "sh") {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// (name, directory) of every example module: registry-layout leaves and complete configurations.
fn example_dirs() -> Vec<(String, PathBuf)> {
    let root = examples_root();
    let mut out = vec![];
    for group in ["provider", "resources", "data-sources"] {
        let g = root.join(group);
        if group == "provider" {
            out.push(("provider".to_string(), g));
            continue;
        }
        for e in std::fs::read_dir(&g).unwrap().flatten() {
            out.push((format!("{group}/{}", e.file_name().to_string_lossy()), e.path()));
        }
    }
    for e in std::fs::read_dir(&root).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !["provider", "resources", "data-sources"].contains(&name.as_str()) && e.path().join("main.tf").is_file() {
            out.push((name, e.path()));
        }
    }
    out.sort();
    out
}

#[test]
fn every_example_validates_and_is_formatted() {
    let dirs = example_dirs();
    assert!(dirs.len() >= 10, "examples found: {dirs:?}");
    let mut failures = vec![];
    for (name, dir) in &dirs {
        let mut text = module_text(dir);
        let mut dirs = vec![dir.clone()];
        // Registry-layout snippets leave the terraform block to the page's reader.
        if !text.contains("required_providers") {
            text = format!("{REQUIRED_PROVIDERS}{}", with_referenced_examples(text, &mut dirs));
        }
        let wd = Workdir::new(&provider_dir(), &text).unwrap();
        for d in &dirs {
            copy_support_files(d, wd.path());
        }
        let run = wd.run(&["validate"]).unwrap();
        if run.code != 0 {
            failures.push(format!("examples/{name}: terraform validate:\n{}{}", run.stdout, run.stderr));
        }
        for file in std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()) {
            if file.extension().is_some_and(|x| x == "tf") {
                let fmt = wd.run(&["fmt", "-check", "-diff", file.to_str().unwrap()]).unwrap();
                if fmt.code != 0 {
                    failures.push(format!("{}: terraform fmt:\n{}{}", file.display(), fmt.stdout, fmt.stderr));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// An import.sh names the resource type of its directory and imports with `terraform import`.
#[test]
fn import_scripts_import_their_own_type() {
    let root = examples_root().join("resources");
    let mut seen = 0;
    for e in std::fs::read_dir(&root).unwrap().flatten() {
        let script = e.path().join("import.sh");
        if !script.is_file() {
            continue;
        }
        seen += 1;
        let ty = e.file_name().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&script).unwrap();
        let cmds: Vec<&str> =
            text.lines().filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty()).collect();
        assert!(!cmds.is_empty(), "{}: no command", script.display());
        for c in cmds {
            // IDs in these scripts have no spaces or quotes.
            let words: Vec<&str> = c.split_whitespace().collect();
            assert!(
                words.len() == 4
                    && words[0] == "terraform"
                    && words[1] == "import"
                    && words[2].starts_with(&format!("{ty}.")),
                "{}: `{c}` is not `terraform import {ty}.NAME ID`",
                script.display()
            );
        }
    }
    assert!(seen >= 3, "import scripts found: {seen}");
}
