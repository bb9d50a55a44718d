//! The template miner: an online Drain-family parser with a fixed-depth
//! parse tree, bounded memory and late merging of groups.
//!
//! How a line is placed:
//! 1. [`Tokenizer`] splits and masks it (see [`super::mask`]); each masked
//!    token is hashed to a `u64`, so the tree and the templates compare
//!    integers and never keep the line's text.
//! 2. A cache keyed on the hash of the whole masked sequence sends a line
//!    straight to the template a previous identical sequence joined, when
//!    that template still matches it (most lines of a busy service repeat).
//! 3. Otherwise the tree routes it by token count, then by its first
//!    `depth - 2` tokens, to a leaf; the leaf's template with the highest
//!    share of equal positions wins if that share reaches `similarity`, and
//!    positions that differ become `<*>`. With no match a new template starts.
//! 4. After the input (and on demand), templates of one length that differ
//!    only where one of them already has a variable are merged
//!    ([`TemplateMiner::merge_variable_groups`]); every id handed out before
//!    stays valid through [`TemplateMiner::resolve`].
//!
//! Memory grows with the number of templates, never with the number of
//! lines: past `max_clusters` live templates, the least recently used tenth
//! leaves the tree (their ids still resolve to their last template).

use std::fmt;
use std::hash::Hasher;

use rustc_hash::{FxHashMap, FxHasher};
use serde::Serialize;

use super::mask::{CompiledMask, Tokenizer, WILDCARD};
use super::{LogsError, MinerConfig};

/// Index of a template group inside one [`TemplateMiner`].
///
/// Cheap (`u32`) so callers can keep one per line; after late merges use
/// [`TemplateMiner::resolve`] to get the group a line ended up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ClusterId(pub u32);

/// Stable identifier of a template: a 64-bit FNV-1a hash of its text, shown
/// as 16 hex digits.
///
/// The same template gets the same id in every run and process, so a
/// template seen in last week's diagnosis can be recognised today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TemplateId(pub u64);

impl TemplateId {
    /// The id of a template text.
    pub fn of(text: &str) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Self(h)
    }
}

impl fmt::Display for TemplateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for TemplateId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A mined template as callers see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Template {
    /// Stable id (hash of `text`).
    pub id: TemplateId,
    /// The group inside this miner.
    pub cluster: ClusterId,
    /// Tokens joined by single spaces, variables as `<*>`.
    pub text: String,
    /// Lines that joined this group (including merged groups).
    pub count: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Live,
    Merged(u32),
    Evicted,
}

#[derive(Debug)]
struct Cluster {
    /// Hash of each token; `wild` for variables.
    hashes: Vec<u64>,
    /// Display text of each token.
    text: Vec<Box<str>>,
    count: u64,
    last_used: u64,
    /// Leaf node holding this cluster while it is live.
    leaf: u32,
    state: State,
}

#[derive(Debug, Default)]
struct Node {
    children: FxHashMap<u64, u32>,
    clusters: Vec<u32>,
}

/// Entries kept in the exact-sequence cache before it is cleared; bounds its
/// memory (about 16 bytes an entry) on streams with endless variety.
const CACHE_LIMIT: usize = 1 << 18;

/// Hash of one masked token.
#[inline]
pub(crate) fn token_hash(token: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write(token.as_bytes());
    h.write_u8(0xff);
    h.finish()
}

/// Hash of a whole masked token sequence (for the cache).
#[inline]
fn sequence_hash(hashes: &[u64]) -> u64 {
    let mut h = FxHasher::default();
    h.write_usize(hashes.len());
    for &t in hashes {
        h.write_u64(t);
    }
    h.finish()
}

/// An online log template miner (Drain family).
///
/// ```
/// use rootcause_analysis::logs::{MinerConfig, TemplateMiner};
///
/// let mut miner = TemplateMiner::new(MinerConfig::default())?;
/// let a = miner.add("Connection to 10.0.0.7:5432 refused after 30ms");
/// let b = miner.add("Connection to 10.0.0.9:5432 refused after 12ms");
/// miner.finish();
/// assert_eq!(miner.resolve(a), miner.resolve(b));
/// assert_eq!(miner.template(a).text, "Connection to <*>:<*> refused after <*>");
/// # Ok::<(), rootcause_analysis::logs::LogsError>(())
/// ```
#[derive(Debug)]
pub struct TemplateMiner {
    config: MinerConfig,
    masks: Vec<CompiledMask>,
    tokenizer: Tokenizer,
    /// Scratch: token hashes of the current line.
    hashes: Vec<u64>,
    wild: u64,
    clusters: Vec<Cluster>,
    nodes: Vec<Node>,
    /// Root of the subtree for each token count.
    roots: FxHashMap<usize, u32>,
    cache: FxHashMap<u64, u32>,
    live: usize,
    tick: u64,
    lines: u64,
}

impl TemplateMiner {
    /// Builds a miner from validated parameters.
    ///
    /// # Errors
    /// When a parameter is out of range or a mask does not compile.
    pub fn new(config: MinerConfig) -> Result<Self, LogsError> {
        let masks = config.compile()?;
        Ok(Self {
            config,
            masks,
            tokenizer: Tokenizer::default(),
            hashes: Vec::new(),
            wild: token_hash(WILDCARD),
            clusters: Vec::new(),
            nodes: Vec::new(),
            roots: FxHashMap::default(),
            cache: FxHashMap::default(),
            live: 0,
            tick: 0,
            lines: 0,
        })
    }

    /// The parameters this miner runs with.
    pub fn config(&self) -> &MinerConfig {
        &self.config
    }

    /// Number of lines added so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Adds one log message and returns the group it joined.
    ///
    /// The group may later be merged into another; call
    /// [`TemplateMiner::resolve`] for the final group.
    pub fn add(&mut self, line: &str) -> ClusterId {
        let mut tokenizer = std::mem::take(&mut self.tokenizer);
        tokenizer.tokenize(line, &self.masks, &self.config.extra_delimiters);
        let mut hashes = std::mem::take(&mut self.hashes);
        hashes.clear();
        hashes.extend(tokenizer.tokens().map(token_hash));
        let id = self.add_hashed(&hashes, || tokenizer.tokens().map(Box::from).collect());
        self.hashes = hashes;
        self.tokenizer = tokenizer;
        id
    }

    /// Adds a line given as masked-token hashes; `text` produces the masked
    /// tokens when a new template must be created (rare), so callers that
    /// tokenised on another thread need not keep the text around.
    pub(crate) fn add_hashed(
        &mut self,
        hashes: &[u64],
        text: impl FnOnce() -> Vec<Box<str>>,
    ) -> ClusterId {
        self.tick += 1;
        self.lines += 1;
        let key = sequence_hash(hashes);
        if let Some(&cached) = self.cache.get(&key) {
            let c = self.resolve_idx(cached);
            let cl = &self.clusters[c as usize];
            if cl.state == State::Live && self.fits(cl, hashes) {
                let cl = &mut self.clusters[c as usize];
                cl.count += 1;
                cl.last_used = self.tick;
                return ClusterId(c);
            }
        }
        let id = match self.tree_search(hashes) {
            Some(c) => {
                self.absorb(c, hashes);
                c
            }
            None => self.create(hashes, text()),
        };
        if self.cache.len() >= CACHE_LIMIT {
            self.cache.clear();
        }
        self.cache.insert(key, id);
        ClusterId(id)
    }

    /// Whether every constant of the template equals the line's token.
    #[inline]
    fn fits(&self, cl: &Cluster, hashes: &[u64]) -> bool {
        cl.hashes.len() == hashes.len()
            && cl
                .hashes
                .iter()
                .zip(hashes)
                .all(|(&t, &h)| t == self.wild || t == h)
    }

    fn prefix_len(&self, len: usize) -> usize {
        (self.config.depth - 2).min(len)
    }

    fn tree_search(&self, hashes: &[u64]) -> Option<u32> {
        let mut node = *self.roots.get(&hashes.len())?;
        for &t in &hashes[..self.prefix_len(hashes.len())] {
            let children = &self.nodes[node as usize].children;
            node = match children.get(&t) {
                Some(&n) => n,
                None => *children.get(&self.wild)?,
            };
        }
        // Similarity counts constants only: a line's variables say nothing
        // about which event it is, so `[instance: <*>] Creating image` must not
        // join `[instance: <*>] Claim successful` for sharing a masked id.
        let constants = hashes.iter().filter(|&&h| h != self.wild).count();
        let mut best: Option<(u32, usize, usize)> = None;
        for &c in &self.nodes[node as usize].clusters {
            let cl = &self.clusters[c as usize];
            let mut same = 0;
            let mut params = 0;
            for (&t, &h) in cl.hashes.iter().zip(hashes) {
                if t == self.wild {
                    params += 1;
                } else if t == h {
                    same += 1;
                }
            }
            if best.is_none_or(|(_, s, p)| same > s || (same == s && params > p)) {
                best = Some((c, same, params));
            }
        }
        let (c, same, _) = best?;
        let sim = if constants == 0 {
            1.0
        } else {
            same as f64 / constants as f64
        };
        (sim >= self.config.similarity).then_some(c)
    }

    /// Joins a line to a template, turning differing positions into `<*>`.
    fn absorb(&mut self, c: u32, hashes: &[u64]) {
        let wild = self.wild;
        let cl = &mut self.clusters[c as usize];
        for (i, &h) in hashes.iter().enumerate() {
            if cl.hashes[i] != h && cl.hashes[i] != wild {
                cl.hashes[i] = wild;
                cl.text[i] = Box::from(WILDCARD);
            }
        }
        cl.count += 1;
        cl.last_used = self.tick;
    }

    fn create(&mut self, hashes: &[u64], text: Vec<Box<str>>) -> u32 {
        let idx = self.clusters.len() as u32;
        let leaf = self.leaf_for_insert(hashes);
        self.nodes[leaf as usize].clusters.push(idx);
        self.clusters.push(Cluster {
            hashes: hashes.to_vec(),
            text,
            count: 1,
            last_used: self.tick,
            leaf,
            state: State::Live,
        });
        self.live += 1;
        if self.live > self.config.max_clusters {
            self.evict();
        }
        idx
    }

    fn new_node(&mut self) -> u32 {
        self.nodes.push(Node::default());
        (self.nodes.len() - 1) as u32
    }

    fn leaf_for_insert(&mut self, hashes: &[u64]) -> u32 {
        let mut node = match self.roots.get(&hashes.len()) {
            Some(&n) => n,
            None => {
                let n = self.new_node();
                self.roots.insert(hashes.len(), n);
                n
            }
        };
        for &t in &hashes[..self.prefix_len(hashes.len())] {
            let children = &self.nodes[node as usize].children;
            let key = if children.contains_key(&t) || t == self.wild {
                t
            } else {
                let constants = children.len() - usize::from(children.contains_key(&self.wild));
                if constants + 1 < self.config.max_children {
                    t
                } else {
                    self.wild
                }
            };
            node = match self.nodes[node as usize].children.get(&key) {
                Some(&n) => n,
                None => {
                    let n = self.new_node();
                    self.nodes[node as usize].children.insert(key, n);
                    n
                }
            };
        }
        node
    }

    /// Removes the least recently used tenth of live templates from the tree.
    fn evict(&mut self) {
        let mut live: Vec<(u64, u32)> = self
            .clusters
            .iter()
            .enumerate()
            .filter(|(_, c)| c.state == State::Live)
            .map(|(i, c)| (c.last_used, i as u32))
            .collect();
        let n = (live.len() / 10).max(1);
        live.select_nth_unstable(n - 1);
        for &(_, c) in &live[..n] {
            self.detach(c);
            self.clusters[c as usize].state = State::Evicted;
        }
    }

    /// Takes a live cluster out of its leaf.
    fn detach(&mut self, c: u32) {
        let leaf = self.clusters[c as usize].leaf;
        let list = &mut self.nodes[leaf as usize].clusters;
        if let Some(pos) = list.iter().position(|&x| x == c) {
            list.swap_remove(pos);
        }
        self.live -= 1;
    }

    fn resolve_idx(&self, mut c: u32) -> u32 {
        while let State::Merged(to) = self.clusters[c as usize].state {
            c = to;
        }
        c
    }

    /// The group a (possibly merged) group ended up in.
    pub fn resolve(&self, id: ClusterId) -> ClusterId {
        ClusterId(self.resolve_idx(id.0))
    }

    /// The current template of a group (resolving merges).
    pub fn template(&self, id: ClusterId) -> Template {
        let c = self.resolve_idx(id.0);
        let cl = &self.clusters[c as usize];
        let text = cl.text.join(" ");
        Template {
            id: TemplateId::of(&text),
            cluster: ClusterId(c),
            text,
            count: cl.count,
        }
    }

    /// All final templates (live and evicted), most frequent first.
    pub fn templates(&self) -> Vec<Template> {
        let mut out: Vec<Template> = (0..self.clusters.len() as u32)
            .filter(|&c| !matches!(self.clusters[c as usize].state, State::Merged(_)))
            .map(|c| self.template(ClusterId(c)))
            .collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then(a.cluster.cmp(&b.cluster)));
        out
    }

    /// The compiled user masks (shared with batch tokenisers).
    pub(crate) fn masks(&self) -> &[CompiledMask] {
        &self.masks
    }

    /// Number of group slots ever created (live, merged or evicted): valid
    /// [`ClusterId`]s are below it.
    pub fn cluster_slots(&self) -> usize {
        self.clusters.len()
    }

    /// Number of live templates (those still matched against new lines).
    pub fn live_templates(&self) -> usize {
        self.live
    }

    /// Ends a batch: runs the late merge when configured. Call before
    /// reading final groups; adding more lines afterwards is fine.
    pub fn finish(&mut self) {
        if self.config.merge_variable_groups {
            self.merge_variable_groups();
        }
    }

    /// Merges live templates of equal length that differ only at positions
    /// where one of them already has a variable.
    ///
    /// Drain places a line by its first tokens, so a template whose variable
    /// happens to sit in the routing prefix can be split across branches
    /// (`<*> connected` and `alice connected`): this pass joins such groups.
    /// Returns the number of merges.
    pub fn merge_variable_groups(&mut self) -> usize {
        let mut by_len: FxHashMap<usize, Vec<u32>> = FxHashMap::default();
        for (i, c) in self.clusters.iter().enumerate() {
            if c.state == State::Live {
                by_len.entry(c.hashes.len()).or_default().push(i as u32);
            }
        }
        let mut merges = 0;
        let mut groups: Vec<Vec<u32>> = by_len.into_values().collect();
        groups.sort_by_key(|g| g.first().copied());
        for group in groups {
            // Most general first: they absorb the specific ones.
            let mut group = group;
            group.sort_by_key(|&c| {
                let cl = &self.clusters[c as usize];
                (
                    std::cmp::Reverse(cl.hashes.iter().filter(|&&h| h == self.wild).count()),
                    c,
                )
            });
            for i in 0..group.len() {
                let a = group[i];
                if self.clusters[a as usize].state != State::Live {
                    continue;
                }
                for &b in &group[i + 1..] {
                    if self.clusters[b as usize].state != State::Live {
                        continue;
                    }
                    if self.compatible(a, b) {
                        self.merge_into(a, b);
                        merges += 1;
                    }
                }
            }
        }
        merges += self.merge_high_cardinality();
        if merges > 0 {
            self.cache.clear();
        }
        merges
    }

    /// Merges templates that are identical except at one position where at
    /// least `variable_cardinality` different words occur: so many values
    /// in one slot make it a parameter (a user name, a job name), while two
    /// or three (`bytes`/`values`, `Started`/`Stopped`) usually name
    /// different events.
    fn merge_high_cardinality(&mut self) -> usize {
        let min_values = self.config.variable_cardinality;
        if min_values < 2 {
            return 0;
        }
        let mut by_len: FxHashMap<usize, Vec<u32>> = FxHashMap::default();
        for (i, c) in self.clusters.iter().enumerate() {
            if c.state == State::Live {
                by_len.entry(c.hashes.len()).or_default().push(i as u32);
            }
        }
        let mut merges = 0;
        let mut lens: Vec<usize> = by_len.keys().copied().collect();
        lens.sort_unstable();
        for len in lens {
            let group = &by_len[&len];
            if group.len() < min_values {
                continue;
            }
            for pos in 0..len {
                let mut buckets: FxHashMap<u64, Vec<u32>> = FxHashMap::default();
                for &c in group {
                    let cl = &self.clusters[c as usize];
                    // The rest of the template must say what the event is:
                    // one-word messages never share a "slot".
                    let anchored = cl
                        .hashes
                        .iter()
                        .enumerate()
                        .any(|(j, &t)| j != pos && t != self.wild);
                    if cl.state != State::Live || !anchored {
                        continue;
                    }
                    let mut h = FxHasher::default();
                    h.write_usize(pos);
                    for (j, &t) in cl.hashes.iter().enumerate() {
                        if j != pos {
                            h.write_u64(t);
                        }
                    }
                    buckets.entry(h.finish()).or_default().push(c);
                }
                let mut keys: Vec<u64> = buckets.keys().copied().collect();
                keys.sort_unstable();
                for k in keys {
                    let members = &buckets[&k];
                    if members.len() < min_values {
                        continue;
                    }
                    let into = members[0];
                    for &from in &members[1..] {
                        self.merge_into(into, from);
                        merges += 1;
                    }
                    let wild = self.wild;
                    let t = &mut self.clusters[into as usize];
                    t.hashes[pos] = wild;
                    t.text[pos] = Box::from(WILDCARD);
                }
            }
        }
        merges
    }

    /// Whether `a` and `b` differ only where one has a variable, and share
    /// enough constants that the merge is not a coincidence of short lines.
    fn compatible(&self, a: u32, b: u32) -> bool {
        let (ca, cb) = (&self.clusters[a as usize], &self.clusters[b as usize]);
        let mut shared_constants = 0;
        for (&x, &y) in ca.hashes.iter().zip(&cb.hashes) {
            if x == y {
                if x != self.wild {
                    shared_constants += 1;
                }
            } else if x != self.wild && y != self.wild {
                return false;
            }
        }
        // Identical templates always merge (all-variable ones included).
        shared_constants > 0 || ca.hashes == cb.hashes
    }

    fn merge_into(&mut self, into: u32, from: u32) {
        self.detach(from);
        let wild = self.wild;
        let (hashes, count, last_used) = {
            let f = &mut self.clusters[from as usize];
            f.state = State::Merged(into);
            f.text = Vec::new();
            (std::mem::take(&mut f.hashes), f.count, f.last_used)
        };
        let t = &mut self.clusters[into as usize];
        for (i, h) in hashes.iter().enumerate() {
            if t.hashes[i] != *h && t.hashes[i] != wild {
                t.hashes[i] = wild;
                t.text[i] = Box::from(WILDCARD);
            }
        }
        t.count += count;
        t.last_used = t.last_used.max(last_used);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn miner() -> TemplateMiner {
        match TemplateMiner::new(MinerConfig::default()) {
            Ok(m) => m,
            Err(e) => panic!("default config must be valid: {e}"),
        }
    }

    #[test]
    fn groups_lines_that_differ_in_variables() {
        let mut m = miner();
        let a = m.add("Deleting block blk_123 file /data/1");
        let b = m.add("Deleting block blk_456 file /data/2");
        let c = m.add("Served block blk_1 to /10.0.0.1");
        m.finish();
        assert_eq!(m.resolve(a), m.resolve(b));
        assert_ne!(m.resolve(a), m.resolve(c));
        assert_eq!(m.template(a).text, "Deleting block <*> file <*>");
        assert_eq!(m.template(a).count, 2);
    }

    #[test]
    fn generalises_differing_constants_above_threshold() {
        let config = MinerConfig {
            similarity: 0.5,
            ..MinerConfig::default()
        };
        let mut m = TemplateMiner::new(config).unwrap();
        let a = m.add("session opened for alice from web");
        let b = m.add("session opened for bob from web");
        assert_eq!(a, b);
        assert_eq!(m.template(a).text, "session opened for <*> from web");
    }

    #[test]
    fn many_words_in_one_slot_become_a_variable_but_few_do_not() {
        let mut m = miner();
        let users = ["alice", "bob", "carol", "dave", "erin"];
        let ids: Vec<_> = users
            .iter()
            .map(|u| m.add(&format!("session opened for {u} from web")))
            .collect();
        let started = m.add("worker started on primary");
        let stopped = m.add("worker stopped on primary");
        m.finish();
        assert!(ids.iter().all(|&i| m.resolve(i) == m.resolve(ids[0])));
        assert_eq!(m.template(ids[0]).text, "session opened for <*> from web");
        assert_ne!(m.resolve(started), m.resolve(stopped));
    }

    #[test]
    fn keeps_dissimilar_lines_apart() {
        let mut m = miner();
        let a = m.add("cache warmed in background");
        let b = m.add("cache flushed by operator request");
        assert_ne!(a, b);
    }

    #[test]
    fn late_merge_joins_groups_split_by_the_routing_prefix() {
        let mut m = miner();
        // The variable sits in the first token: Drain routes the three
        // lines to different branches.
        let a = m.add("alice connected to the primary node");
        let b = m.add("bob connected to the primary node");
        let c = m.add("12 connected to the primary node");
        assert_ne!(a, b);
        m.finish();
        assert_eq!(m.resolve(a), m.resolve(b));
        assert_eq!(m.resolve(a), m.resolve(c));
        assert_eq!(m.template(b).text, "<*> connected to the primary node");
        assert_eq!(m.template(b).count, 3);
    }

    #[test]
    fn eviction_bounds_live_templates_and_ids_still_resolve() {
        let config = MinerConfig {
            max_clusters: 20,
            merge_variable_groups: false,
            ..MinerConfig::default()
        };
        let mut m = TemplateMiner::new(config).unwrap_or_else(|e| panic!("{e}"));
        let words = [
            "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf",
        ];
        let mut first = Vec::new();
        for a in words {
            for b in words {
                // One token per line: no two lines are similar.
                first.push(m.add(&format!("{a}_{b}")));
            }
        }
        assert!(m.live_templates() <= 20, "live {}", m.live_templates());
        assert_eq!(m.template(first[0]).text, "alpha_alpha");
        assert_eq!(m.templates().len(), words.len() * words.len());
    }

    #[test]
    fn template_id_is_stable_across_runs() {
        assert_eq!(
            TemplateId::of("a <*> b").to_string(),
            TemplateId::of("a <*> b").to_string()
        );
        assert_eq!(TemplateId::of("").to_string(), "cbf29ce484222325");
        assert_ne!(TemplateId::of("a <*> b"), TemplateId::of("a <*> c"));
    }

    #[test]
    fn invalid_config_is_rejected_with_the_key() {
        let bad = MinerConfig {
            similarity: 1.5,
            ..MinerConfig::default()
        };
        let err = TemplateMiner::new(bad).map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("similarity"), "{err}");
    }
}
