//! `rootcause logs`: log template mining and incident-vs-baseline diffs from
//! the terminal.
//!
//! - `rootcause logs parse [FILE|-]` writes, in input order, one record per
//!   input line with its final template (`--format jsonl|csv`). Per line it
//!   keeps a `u32` group index, never the text, so memory grows with the
//!   number of templates and lines, not with their size.
//! - `rootcause logs diff --baseline FILE --incident FILE` prints templates
//!   that are new, rose or fell in the incident, as a table or `--json`.
//!
//! Both take `--config FILE` (TOML, or JSON when the name ends in `.json`)
//! with the miner's parameters; see `docs/analysis.md`.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use rootcause_analysis::logs::{
    DiffConfig, LineParser, LogRecord, MinerConfig, TemplateDiff, diff_templates,
};

/// Arguments of `rootcause logs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Assign every input line (one message per line) its log template.
    Parse(ParseArgs),
    /// Compare the templates of an incident window with a baseline.
    Diff(DiffArgs),
}

/// Output format of `logs parse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// `{"line": N, "template_id": "...", "template": "..."}` per line.
    Jsonl,
    /// `line,template_id,template` with a header row.
    Csv,
}

#[derive(Debug, clap::Args)]
struct ParseArgs {
    /// Input file, one message per line; `-` (the default) reads stdin.
    #[arg(default_value = "-")]
    input: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    format: Format,
    /// Miner parameters (TOML, or JSON for a `.json` file).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print lines, templates, throughput and peak memory to stderr.
    #[arg(long)]
    stats: bool,
    /// Threads for tokenising (0 = all cores, 1 = single-threaded).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

#[derive(Debug, clap::Args)]
struct DiffArgs {
    /// Baseline log: one message per line, or JSON lines with `message`
    /// (and optionally `@timestamp`, `log.level`) as in incident bundles.
    #[arg(long)]
    baseline: PathBuf,
    /// Incident log, same format as the baseline.
    #[arg(long)]
    incident: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Miner parameters (TOML, or JSON for a `.json` file).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Fewest lines for a rate change to count.
    #[arg(long, default_value_t = 5)]
    min_count: u64,
    /// Largest p-value reported as significant.
    #[arg(long, default_value_t = 0.001)]
    significance: f64,
    /// Smallest rate ratio (or its inverse) reported.
    #[arg(long, default_value_t = 2.0)]
    min_ratio: f64,
    /// Rows shown in the table (all with --json).
    #[arg(long, default_value_t = 30)]
    limit: usize,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Parse(a) => parse(a),
        Command::Diff(a) => diff(a),
    }
}

fn load_config(path: Option<&Path>) -> anyhow::Result<MinerConfig> {
    let Some(path) = path else {
        return Ok(MinerConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading miner config {}", path.display()))?;
    let config: MinerConfig = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text)
            .with_context(|| format!("parsing JSON miner config {}", path.display()))?
    } else {
        toml::from_str(&text)
            .with_context(|| format!("parsing TOML miner config {}", path.display()))?
    };
    Ok(config)
}

fn open_input(path: &Path) -> anyhow::Result<Box<dyn Read>> {
    if path.as_os_str() == "-" {
        Ok(Box::new(std::io::stdin().lock()))
    } else {
        let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Ok(Box::new(f))
    }
}

/// Lines per batch handed to the tokenising threads: large enough to
/// amortise thread start-up, small enough to bound the text held at once.
const BATCH: usize = 1 << 16;

fn parse(args: ParseArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let config = load_config(args.config.as_deref())?;
    let threads = match args.threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let mut parser = LineParser::new(config)
        .context("invalid miner configuration")?
        .with_threads(threads);
    let mut reader = BufReader::with_capacity(1 << 20, open_input(&args.input)?);
    // A batch is one text buffer plus line ends: no allocation per line.
    let mut text = String::new();
    let mut ends: Vec<usize> = Vec::with_capacity(BATCH);
    let mut raw = Vec::new();
    let mut bytes = 0u64;
    let flush = |parser: &mut LineParser, text: &mut String, ends: &mut Vec<usize>| {
        let mut start = 0;
        let lines: Vec<&str> = ends
            .iter()
            .map(|&e| {
                let l = &text[start..e];
                start = e;
                l
            })
            .collect();
        parser.push_batch(&lines);
        text.clear();
        ends.clear();
    };
    loop {
        raw.clear();
        let n = reader
            .read_until(b'\n', &mut raw)
            .with_context(|| format!("reading {}", args.input.display()))?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        while raw.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
            raw.pop();
        }
        match std::str::from_utf8(&raw) {
            Ok(s) => text.push_str(s),
            Err(_) => text.push_str(&String::from_utf8_lossy(&raw)),
        }
        ends.push(text.len());
        if ends.len() == BATCH {
            flush(&mut parser, &mut text, &mut ends);
        }
    }
    flush(&mut parser, &mut text, &mut ends);
    let result = parser.finish();
    let mined = started.elapsed();

    let stdout = std::io::stdout().lock();
    let mut out = BufWriter::with_capacity(1 << 20, stdout);
    match args.format {
        Format::Jsonl => {
            // Each template's JSON text once, not once per line.
            let quoted: Vec<String> = result
                .templates()
                .iter()
                .map(|t| serde_json::to_string(&t.text))
                .collect::<Result<_, _>>()
                .context("encoding templates")?;
            for (i, &g) in result.line_groups().iter().enumerate() {
                let t = &result.templates()[g as usize];
                writeln!(
                    out,
                    "{{\"line\":{},\"template_id\":\"{}\",\"template\":{}}}",
                    i + 1,
                    t.id,
                    quoted[g as usize]
                )
                .context("writing output")?;
            }
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            w.write_record(["line", "template_id", "template"])
                .context("writing output")?;
            for r in result.records() {
                w.write_record([
                    r.line.to_string(),
                    r.template_id.to_string(),
                    r.template.to_owned(),
                ])
                .context("writing output")?;
            }
            w.flush().context("writing output")?;
        }
    }
    out.flush().context("writing output")?;
    drop(out);
    if args.stats {
        let total = started.elapsed();
        let lines = result.line_groups().len();
        let secs = mined.as_secs_f64().max(1e-9);
        eprintln!(
            "lines={lines} bytes={bytes} templates={} threads={threads} \
             parse_seconds={:.3} total_seconds={:.3} lines_per_second={:.0} cpu_seconds={} \
             peak_rss_kib={}",
            result.templates().len(),
            secs,
            total.as_secs_f64(),
            lines as f64 / secs,
            cpu_seconds().map_or_else(|| "unknown".to_owned(), |c| format!("{c:.3}")),
            peak_rss_kib().map_or_else(|| "unknown".to_owned(), |k| k.to_string()),
        );
    }
    Ok(())
}

/// User plus system CPU time of this process so far (Linux only), from
/// `/proc/self/stat` in clock ticks of 1/100 s (the Linux default `USER_HZ`).
/// On a busy machine wall-clock rates understate speed; CPU time does not.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Peak resident set size (`VmHWM`) of this process, in KiB (Linux only).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// One input record, owned.
struct OwnedRecord {
    timestamp: Option<DateTime<Utc>>,
    level: Option<String>,
    message: String,
}

fn view(r: &OwnedRecord) -> LogRecord<'_> {
    LogRecord {
        timestamp: r.timestamp,
        level: r.level.as_deref(),
        message: &r.message,
    }
}

/// Reads plain lines, or JSON lines with `message` (ECS bundle logs).
fn read_records(path: &Path) -> anyhow::Result<Vec<OwnedRecord>> {
    let reader = BufReader::new(open_input(path)?);
    let mut out = Vec::new();
    for line in reader.lines() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        let json = line
            .trim_start()
            .starts_with('{')
            .then(|| serde_json::from_str::<serde_json::Value>(&line).ok())
            .flatten();
        let rec = match json.as_ref().and_then(|v| v.get("message")?.as_str()) {
            Some(message) => {
                let v = json.as_ref();
                let field = |k: &str| v.and_then(|v| v.get(k)).and_then(|x| x.as_str());
                OwnedRecord {
                    timestamp: field("@timestamp")
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.with_timezone(&Utc)),
                    level: field("log.level")
                        .or_else(|| field("level"))
                        .map(str::to_owned),
                    message: message.to_owned(),
                }
            }
            None => OwnedRecord {
                timestamp: None,
                level: None,
                message: line,
            },
        };
        out.push(rec);
    }
    Ok(out)
}

fn diff(args: DiffArgs) -> anyhow::Result<()> {
    let config = DiffConfig {
        miner: load_config(args.config.as_deref())?,
        min_count: args.min_count,
        significance: args.significance,
        min_ratio: args.min_ratio,
        ..DiffConfig::default()
    };
    let baseline = read_records(&args.baseline)?;
    let incident = read_records(&args.incident)?;
    let d = diff_templates(
        baseline.iter().map(view),
        incident.iter().map(view),
        &config,
    )
    .context("invalid miner configuration")?;
    if args.json {
        let stdout = std::io::stdout().lock();
        serde_json::to_writer_pretty(stdout, &d).context("writing JSON")?;
        println!();
    } else {
        println!("{}", table(&d, args.limit));
    }
    Ok(())
}

fn table(d: &TemplateDiff, limit: usize) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header([
            "change",
            "level",
            "baseline",
            "incident",
            "ratio",
            "p-value",
            "first seen",
            "template",
            "exception",
        ]);
    for c in d.changes.iter().take(limit) {
        let first = c
            .first_seen
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .or_else(|| c.first_seen_line.map(|l| format!("line {l}")))
            .unwrap_or_default();
        let exception = c
            .exception
            .as_ref()
            .map(|e| {
                let at = e.frames.first().map(|f| format!(" at {}", f.location()));
                format!("{}{}", e.exception_type, at.unwrap_or_default())
            })
            .unwrap_or_default();
        let mut template = c.template.replace('\n', " ⏎ ");
        if template.chars().count() > 120 {
            template = template.chars().take(117).collect::<String>() + "...";
        }
        t.add_row([
            format!("{:?}", c.kind).to_lowercase(),
            c.level.clone().unwrap_or_default(),
            c.baseline_count.to_string(),
            c.incident_count.to_string(),
            c.rate_ratio
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.1}")),
            format!("{:.1e}", c.p_value),
            first,
            template,
            exception,
        ]);
    }
    format!(
        "{t}\nbaseline: {} lines over {:.0} {unit}; incident: {} lines over {:.0} {unit}; \
         {} changed templates ({} shown), {} steady",
        d.baseline_lines,
        d.baseline_exposure,
        d.incident_lines,
        d.incident_exposure,
        d.changes.len(),
        d.changes.len().min(limit),
        d.steady,
        unit = d.exposure_unit,
    )
}
