use clap::{Args, Parser, Subcommand};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use strata_agent::report::{EXIT_SPEC, EXIT_USAGE};
use strata_agent::{facts, parse_spec, runner, Context, Format, RunMode};

/// Like Ansible's: 2 means "changed", so nothing else may use it.
const EXIT_HELP: &str = "Exit status:
  0   nothing changed (apply), nothing would change (check)
  2   something changed (apply), something would change (check)
  1   a task failed
  64  usage error: bad flags or arguments, unreadable spec path, bad --root
  65  the spec does not parse; nothing was run";

/// Applies kubelet/containerd/OS configuration to this node idempotently.
#[derive(Parser)]
#[command(name = "strata-agent", version, after_help = EXIT_HELP)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Bring the node to the state in SPEC.
    Apply(RunArgs),
    /// Report what `apply` would change; changes nothing.
    Check(RunArgs),
    /// Print facts about the node.
    Facts {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = "/")]
        root: PathBuf,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Spec file (.hcl or .json; other names and `-` for stdin are sniffed).
    spec: String,
    /// Show unified diffs of file changes.
    #[arg(long)]
    diff: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Filesystem root files are read and written under.
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// Simulate live state (sysctl, modules, swap, systemd, apt) as files
    /// inside --root instead of running the real commands: for test beds
    /// without systemd. Refused when --root is this system's own root.
    #[arg(long)]
    simulate: bool,
}

fn read_spec(name: &str) -> Result<String, String> {
    if name == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| format!("reading stdin: {e}"))?;
        Ok(s)
    } else {
        std::fs::read_to_string(name).map_err(|e| format!("{name}: {e}"))
    }
}

fn fail(json: bool, source: &str, err: &dyn std::fmt::Display, detail: serde_json::Value, code: u8) -> ExitCode {
    if json {
        let mut v = serde_json::json!({ "error": format!("{source}: {err}") });
        if let (Some(o), serde_json::Value::Object(d)) = (v.as_object_mut(), detail) {
            o.extend(d);
        }
        println!("{v}");
    } else {
        eprintln!("error: {source}: {err}");
    }
    ExitCode::from(code)
}

fn run(args: RunArgs, mode: RunMode) -> ExitCode {
    let text = match read_spec(&args.spec) {
        Ok(t) => t,
        Err(e) => return fail(args.json, "spec", &e, serde_json::json!({}), EXIT_USAGE),
    };
    let spec = match parse_spec(&text, Format::detect(&args.spec, &text)) {
        Ok(s) => s,
        Err(e) => {
            let detail = serde_json::json!({ "key": e.key, "line": e.line, "column": e.column });
            return fail(args.json, &args.spec, &e, detail, EXIT_SPEC);
        }
    };
    if !args.root.is_dir() {
        return fail(
            args.json,
            "--root",
            &format!("{} is not a directory", args.root.display()),
            serde_json::json!({}),
            EXIT_USAGE,
        );
    }
    let ctx = match Context::new(&args.root, args.simulate) {
        Ok(c) => c,
        Err(e) => return fail(args.json, "--simulate", &e, serde_json::json!({}), EXIT_USAGE),
    };
    let mut report = runner::run(&spec, &ctx, mode);
    if !args.diff {
        // File contents (possibly secrets) appear in output only when asked for.
        report.tasks.iter_mut().flat_map(|t| t.changes.iter_mut()).for_each(|c| c.diff = None);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("report serializes"));
    } else {
        print!("{}", report.render_human(args.diff));
    }
    ExitCode::from(report.exit_code() as u8)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap exits 2 on usage errors, which would read as "changed".
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(EXIT_USAGE) } else { ExitCode::SUCCESS };
        }
    };
    match cli.cmd {
        Cmd::Apply(a) => run(a, RunMode::Apply),
        Cmd::Check(a) => run(a, RunMode::Check),
        Cmd::Facts { json, root } => {
            let f = facts::gather(&root);
            let v = serde_json::to_value(&f).expect("facts serialize");
            if json {
                println!("{}", serde_json::to_string_pretty(&v).expect("json"));
            } else {
                let flat = |v: &serde_json::Value| match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => "-".into(),
                    o => o.to_string(),
                };
                for (k, val) in v.as_object().into_iter().flatten() {
                    match val {
                        serde_json::Value::Object(o) => {
                            o.iter().for_each(|(k2, v2)| println!("{k}.{k2}: {}", flat(v2)))
                        }
                        other => println!("{k}: {}", flat(other)),
                    }
                }
            }
            ExitCode::SUCCESS
        }
    }
}
