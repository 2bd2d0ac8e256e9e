use std::io::{Read, Write};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("install") {
        std::process::exit(cni_cloud::install::main(&args[2..]));
    }
    // The plugin path: no async runtime, no logging framework — stdin in, JSON out.
    let mut stdin = Vec::new();
    if std::io::stdin().read_to_end(&mut stdin).is_err() {
        stdin.clear();
    }
    let outcome = cni_cloud::plugin::run(|k| std::env::var(k).ok(), &stdin);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(outcome.stdout.as_bytes());
    let _ = out.flush();
    std::process::exit(outcome.code);
}
