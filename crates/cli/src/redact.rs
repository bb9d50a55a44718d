//! `rootcause redact [FILE]`: prints text exactly as it would reach a model
//! after secret redaction, so a user can check what leaves their network.
//!
//! Log lines reach a model inside JSON tool results, so each line is
//! redacted as it is sent (JSON-encoded, quotes escaped) and printed back
//! decoded, one output line per input line. Bytes that are not UTF-8 are
//! replaced (U+FFFD), as the bundle readers do.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Context;
use rootcause_llm::{RedactionRules, RedactionSettings, Redactor};

/// Arguments of `rootcause redact`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file to redact; standard input when absent.
    file: Option<PathBuf>,
    /// Keep e-mail addresses (the default redacts them, as a diagnosis does).
    #[arg(long)]
    keep_emails: bool,
    /// The placeholder key: the same secret gets the same placeholder for
    /// the same salt (a diagnosis uses its id).
    #[arg(long, default_value = "rootcause-redact")]
    salt: String,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    let rules = RedactionRules::new(&RedactionSettings {
        emails: !args.keep_emails,
        ..RedactionSettings::default()
    })
    .map_err(|(i, e)| anyhow::anyhow!("redaction pattern {i} does not compile: {e}"))?;
    let redactor = rules.for_diagnosis(args.salt.as_bytes());
    let input: Box<dyn BufRead> = match &args.file {
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let mut out = std::io::stdout().lock();
    for line in input.split(b'\n') {
        let bytes = line.context("reading the input")?;
        let text = String::from_utf8_lossy(&bytes);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        writeln!(out, "{}", as_sent(&redactor, text)).context("writing the output")?;
    }
    Ok(())
}

/// `line` redacted as a model receives it (inside a JSON string), then
/// decoded for reading; the JSON form itself when decoding is impossible.
#[must_use]
pub fn as_sent(redactor: &Redactor, line: &str) -> String {
    let encoded = serde_json::Value::from(line).to_string();
    let redacted = redactor.redact(&encoded);
    serde_json::from_str::<String>(&redacted).unwrap_or_else(|_| {
        let inner = redacted
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or(&redacted);
        inner.to_owned()
    })
}
