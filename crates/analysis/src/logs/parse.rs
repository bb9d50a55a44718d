//! Whole-input parsing: one template per line, in input order, with late
//! merges remapped before anything is read out.
//!
//! This is the code path of `rootcause logs parse`, of the Loghub accuracy
//! test and of the throughput bench. Per line it keeps one `u32` (the group
//! the line joined), never the text, so memory grows with the number of
//! lines' ids and templates only.
//!
//! [`LineParser::push_batch`] tokenises and masks chunks of a batch on
//! worker threads (`std::thread::scope`) while the calling thread places the
//! finished chunks in input order: placing is sequential by nature (each
//! line may change a template the next line is compared with), tokenising
//! is not.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustc_hash::FxHashMap;

use super::mask::{CompiledMask, Tokenizer};
use super::miner::token_hash;
use super::{ClusterId, LogsError, MinerConfig, Template, TemplateId, TemplateMiner};

/// Streams lines into a [`TemplateMiner`] and remembers each line's group.
#[derive(Debug)]
pub struct LineParser {
    miner: TemplateMiner,
    ids: Vec<u32>,
    threads: usize,
}

/// Masked-token hashes of a batch of lines, computed off the main thread.
#[derive(Debug, Default)]
struct Hashed {
    hashes: Vec<u64>,
    /// End offset in `hashes` of each line.
    ends: Vec<u32>,
}

impl LineParser {
    /// A parser with the given miner parameters, single-threaded.
    ///
    /// # Errors
    /// When the configuration is invalid (see [`TemplateMiner::new`]).
    pub fn new(config: MinerConfig) -> Result<Self, LogsError> {
        Ok(Self {
            miner: TemplateMiner::new(config)?,
            ids: Vec::new(),
            threads: 1,
        })
    }

    /// Uses up to `threads` threads for tokenising batches (1 = none).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Adds one line.
    pub fn push(&mut self, line: &str) {
        let id = self.miner.add(line);
        self.ids.push(id.0);
    }

    /// Adds a batch of lines, tokenising them in parallel when this parser
    /// has more than one thread.
    ///
    /// `threads - 1` workers tokenise chunks of the batch while this thread
    /// places finished chunks in input order, so tokenising (most of the
    /// work) overlaps placing. The result is identical to [`Self::push`]
    /// line by line.
    pub fn push_batch<S: AsRef<str> + Sync>(&mut self, lines: &[S]) {
        const CHUNK: usize = 4096;
        let workers = self.threads.saturating_sub(1);
        if workers == 0 || lines.len() < 2 * CHUNK {
            for l in lines {
                self.push(l.as_ref());
            }
            return;
        }
        let chunks: Vec<&[S]> = lines.chunks(CHUNK).collect();
        let masks = self.miner.masks().to_vec();
        let delims = self.miner.config().extra_delimiters.clone();
        let next = AtomicUsize::new(0);
        let mut placed = 0;
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Hashed)>(workers * 2);
            for _ in 0..workers {
                let tx = tx.clone();
                let (chunks, masks, delims, next) = (&chunks, &masks, &delims, &next);
                s.spawn(move || {
                    let mut t = Tokenizer::default();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(part) = chunks.get(i) else { break };
                        let mut out = Hashed::default();
                        for l in *part {
                            t.tokenize(l.as_ref(), masks, delims);
                            out.hashes.extend(t.tokens().map(token_hash));
                            out.ends.push(out.hashes.len() as u32);
                        }
                        if tx.send((i, out)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            // Chunks arrive out of order; place them in order.
            let mut pending: BTreeMap<usize, Hashed> = BTreeMap::new();
            let mut tokenizer = Tokenizer::default();
            for (i, hashed) in rx {
                pending.insert(i, hashed);
                while let Some(hashed) = pending.remove(&placed) {
                    self.place_chunk(chunks[placed], &hashed, &mut tokenizer, &masks, &delims);
                    placed += 1;
                }
            }
        });
        // Only if a worker died: place what it left, on this thread.
        for part in &chunks[placed..] {
            for l in *part {
                self.push(l.as_ref());
            }
        }
    }

    fn place_chunk<S: AsRef<str>>(
        &mut self,
        part: &[S],
        hashed: &Hashed,
        tokenizer: &mut Tokenizer,
        masks: &[CompiledMask],
        delims: &[char],
    ) {
        let mut start = 0usize;
        for (l, &end) in part.iter().zip(&hashed.ends) {
            let end = end as usize;
            // The text is needed only when the line starts a template.
            let text = || {
                tokenizer.tokenize(l.as_ref(), masks, delims);
                tokenizer.tokens().map(Box::from).collect()
            };
            let id = self.miner.add_hashed(&hashed.hashes[start..end], text);
            self.ids.push(id.0);
            start = end;
        }
    }

    /// Ends the input: runs the late merge and returns the result.
    pub fn finish(mut self) -> ParseResult {
        self.miner.finish();
        // Groups are defined by template id: two groups whose templates
        // ended up identical are one group in the output.
        let mut by_id: FxHashMap<TemplateId, u32> = FxHashMap::default();
        let mut templates: Vec<Template> = Vec::new();
        let slots = self.miner.cluster_slots();
        // Original group -> dense output index; filled once per group.
        let mut remap = vec![u32::MAX; slots];
        // Final (resolved) group -> dense output index.
        let mut finals = vec![u32::MAX; slots];
        for id in &mut self.ids {
            if remap[*id as usize] == u32::MAX {
                let resolved = self.miner.resolve(ClusterId(*id)).0 as usize;
                if finals[resolved] == u32::MAX {
                    let tpl = self.miner.template(ClusterId(resolved as u32));
                    finals[resolved] = match by_id.get(&tpl.id) {
                        Some(&dense) => {
                            templates[dense as usize].count += tpl.count;
                            dense
                        }
                        None => {
                            by_id.insert(tpl.id, templates.len() as u32);
                            templates.push(tpl);
                            (templates.len() - 1) as u32
                        }
                    };
                }
                remap[*id as usize] = finals[resolved];
            }
            *id = remap[*id as usize];
        }
        ParseResult {
            miner: self.miner,
            line_template: self.ids,
            templates,
        }
    }
}

/// The outcome of a whole parse: each line's final template.
#[derive(Debug)]
pub struct ParseResult {
    miner: TemplateMiner,
    /// Per line, an index into `templates`.
    line_template: Vec<u32>,
    templates: Vec<Template>,
}

/// One output record: a line and its final template.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Record<'a> {
    /// 1-based line number in the input.
    pub line: u64,
    /// Stable id of the line's final template.
    pub template_id: TemplateId,
    /// The final template text.
    pub template: &'a str,
}

impl ParseResult {
    /// Records in input order.
    pub fn records(&self) -> impl ExactSizeIterator<Item = Record<'_>> + '_ {
        self.line_template.iter().enumerate().map(|(i, &t)| {
            let tpl = &self.templates[t as usize];
            Record {
                line: i as u64 + 1,
                template_id: tpl.id,
                template: &tpl.text,
            }
        })
    }

    /// Per line, an index into [`ParseResult::templates`] (a dense group label).
    pub fn line_groups(&self) -> &[u32] {
        &self.line_template
    }

    /// The distinct final templates, in order of first appearance.
    pub fn templates(&self) -> &[Template] {
        &self.templates
    }

    /// The miner, for further lines or inspection.
    pub fn miner(&self) -> &TemplateMiner {
        &self.miner
    }
}
