//! Path search: from the leaf toward a group CA, breadth first, links found
//! by name and decided by signature, within a depth and signature budget;
//! when no path holds, the most specific failure is ranked first.

use std::collections::{HashMap, HashSet, VecDeque};

use super::facts::Facts;
use super::name::canonical_name;
use super::rules::*;
use super::signature::{SigCheck, check_signature};
use super::{GroupCas, MAX_DEPTH, MAX_SIGNATURE_CHECKS, PathCert, Source, Verdict, VerifyOptions};
use crate::cert::{self, CertSummary};
use crate::problem::{Problem, ProblemCode, Warning, WarningCode};

struct Node<'a> {
    facts: Facts<'a>,
    source: Source,
    position: usize,
    /// This certificate is a group CA (same subject and key): the anchor
    /// stands in for it.
    is_anchor: bool,
}

#[derive(Clone, Copy)]
struct State {
    node: usize,
    parent: Option<usize>,
    depth: usize,
    /// No certificate on the way failed its own checks.
    clean: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Anchor(usize),
    Node(usize),
}

struct DeadEnd {
    state: usize,
    problem: Problem,
}

struct Candidate {
    problems: Vec<(usize, Problem)>,
    states: Vec<usize>,
    anchor: usize,
}

pub(super) fn verify_inner<D: AsRef<[u8]>, U: AsRef<[u8]>>(
    cas: &GroupCas,
    presented: &[D],
    untrusted: &[U],
    options: &VerifyOptions,
) -> Verdict {
    let Some(leaf_der) = presented.first() else {
        return Verdict::failed(
            None,
            Problem::new(
                ProblemCode::NoCertificate,
                "",
                "there is no certificate to verify",
            ),
        );
    };
    let leaf_der = leaf_der.as_ref();
    let leaf_x = match cert::parse_exact(leaf_der, 1) {
        Ok(x) => x,
        Err(e) => {
            return Verdict::failed(
                None,
                Problem::new(
                    ProblemCode::Malformed,
                    "certificate #1",
                    format!("the leaf {e}"),
                ),
            );
        }
    };
    let leaf_summary = CertSummary::new(&leaf_x, leaf_der);
    if cas.anchors.is_empty() {
        return Verdict::failed(
            Some(leaf_summary),
            Problem::new(
                ProblemCode::IssuerNotFound,
                cert::name_string(&leaf_x.tbs_certificate.subject),
                "no group CA was given",
            ),
        );
    }
    let mut nodes: Vec<Node<'_>> = Vec::with_capacity(presented.len() + untrusted.len());
    nodes.push(Node {
        facts: Facts::new(&leaf_x, leaf_der),
        source: Source::Leaf,
        position: 1,
        is_anchor: false,
    });
    drop(leaf_x);
    let mut seen: HashSet<&[u8]> = HashSet::new();
    seen.insert(leaf_der);
    let inputs = presented[1..]
        .iter()
        .map(|d| d.as_ref())
        .enumerate()
        .map(|(i, d)| (Source::Presented, i + 2, d))
        .chain(
            untrusted
                .iter()
                .map(|d| d.as_ref())
                .enumerate()
                .map(|(i, d)| (Source::Untrusted, i + 1, d)),
        );
    for (source, position, der) in inputs {
        if !seen.insert(der) {
            continue;
        }
        let x = match cert::parse_exact(der, position) {
            Ok(x) => x,
            Err(e) => {
                let which = match source {
                    Source::Untrusted => format!("untrusted certificate #{position}"),
                    _ => format!("certificate #{position}"),
                };
                let mut v = Verdict::failed(
                    Some(leaf_summary),
                    Problem::new(ProblemCode::Malformed, &which, format!("{which}: {e}")),
                );
                v.path = vec![path_cert(&nodes[0].facts, Source::Leaf, 1)];
                return v;
            }
        };
        let facts = Facts::new(&x, der);
        let is_anchor = cas.anchors.iter().any(|a| a.facts.same_ca(&facts));
        nodes.push(Node {
            facts,
            source,
            position,
            is_anchor,
        });
    }
    let mut search = Search::new(cas, &nodes, options);
    search.run();
    search.verdict(leaf_summary)
}

pub(super) fn path_cert(f: &Facts<'_>, source: Source, position: usize) -> PathCert {
    PathCert {
        subject: f.subject.clone(),
        issuer: f.issuer.clone(),
        not_before: cert::rfc3339(f.not_before),
        not_after: cert::rfc3339(f.not_after),
        source,
        position,
        problems: Vec::new(),
    }
}

struct Search<'s, 'a> {
    cas: &'s GroupCas,
    nodes: &'s [Node<'a>],
    options: &'s VerifyOptions,
    states: Vec<State>,
    /// Per node: entered clean, entered dirty.
    visited: Vec<[bool; 2]>,
    /// Per node: passes its own checks as an issuer (computed lazily).
    issuer_ok: Vec<Option<bool>>,
    /// Pool index by canonical subject (built on first use).
    by_name: Option<HashMap<Vec<u8>, Vec<usize>>>,
    sig_cache: Vec<(usize, Target, bool)>,
    sig_checks: usize,
    gave_up: bool,
    complete: Vec<Candidate>,
    dead: Vec<DeadEnd>,
    leaf_problems: Vec<Problem>,
    /// The chain file is out of order (see [`check_leaf_order`]).
    order_warning: Option<Warning>,
}

impl<'s, 'a> Search<'s, 'a> {
    fn new(cas: &'s GroupCas, nodes: &'s [Node<'a>], options: &'s VerifyOptions) -> Self {
        let leaf = &nodes[0].facts;
        let order = check_leaf_order(
            leaf,
            nodes[1..]
                .iter()
                .filter(|n| n.source == Source::Presented)
                .map(|n| (n.position, &n.facts)),
        );
        let (order_problem, order_warning) = match order {
            Some((p, w)) => (Some(p), Some(w)),
            None => (check_leaf_not_ca(leaf), None),
        };
        let leaf_problems = [
            check_leaf_cn(leaf),
            order_problem,
            check_leaf_eku(leaf),
            check_validity(leaf, options.at),
            check_critical_extensions(leaf),
            check_key_algorithm(leaf),
        ]
        .into_iter()
        .flatten()
        .collect();
        Search {
            cas,
            nodes,
            options,
            states: Vec::new(),
            visited: vec![[false; 2]; nodes.len()],
            issuer_ok: vec![None; nodes.len()],
            by_name: None,
            sig_cache: Vec::new(),
            sig_checks: 0,
            gave_up: false,
            complete: Vec::new(),
            dead: Vec::new(),
            leaf_problems,
            order_warning,
        }
    }

    fn facts(&self, t: Target) -> &Facts<'_> {
        match t {
            Target::Anchor(i) => &self.cas.anchors[i].facts,
            Target::Node(i) => &self.nodes[i].facts,
        }
    }

    /// The problems a certificate has as an issuer on any path, pathlen
    /// aside.
    fn issuer_problems(&self, f: &Facts<'_>) -> Vec<Problem> {
        [
            check_validity(f, self.options.at),
            check_issuer_is_ca(f),
            check_basic_constraints_critical(f),
            check_key_cert_sign(f),
            check_critical_extensions(f),
            check_key_algorithm(f),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    fn node_ok(&mut self, i: usize) -> bool {
        if let Some(ok) = self.issuer_ok[i] {
            return ok;
        }
        let n = &self.nodes[i];
        let ok = n.source != Source::Untrusted && self.issuer_problems(&n.facts).is_empty();
        self.issuer_ok[i] = Some(ok);
        ok
    }

    fn signature(&mut self, child: usize, issuer: Target) -> SigCheck {
        if let Some(&(_, _, ok)) = self
            .sig_cache
            .iter()
            .find(|(c, t, _)| *c == child && *t == issuer)
        {
            return if ok {
                SigCheck::Valid
            } else {
                SigCheck::Invalid(String::new())
            };
        }
        self.sig_checks += 1;
        let r = check_signature(&self.nodes[child].facts, self.facts(issuer));
        if !matches!(r, SigCheck::Unsupported(_)) {
            self.sig_cache
                .push((child, issuer, matches!(r, SigCheck::Valid)));
        }
        r
    }

    fn on_path(&self, mut s: usize, node: usize) -> bool {
        loop {
            if self.states[s].node == node {
                return true;
            }
            match self.states[s].parent {
                Some(p) => s = p,
                None => return false,
            }
        }
    }

    fn pool_candidates(&mut self, issuer_raw: &[u8]) -> Vec<usize> {
        if self.nodes.len() <= 1 {
            return Vec::new();
        }
        let nodes = self.nodes;
        let map = self.by_name.get_or_insert_with(|| {
            let mut m: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
            for (i, n) in nodes.iter().enumerate() {
                m.entry(canonical_name(&n.facts.subject_raw))
                    .or_default()
                    .push(i);
            }
            m
        });
        map.get(&canonical_name(issuer_raw))
            .cloned()
            .unwrap_or_default()
    }

    fn run(&mut self) {
        self.states.push(State {
            node: 0,
            parent: None,
            depth: 0,
            clean: true,
        });
        self.visited[0][0] = true;
        let mut queue = VecDeque::from([0usize]);
        while let Some(s) = queue.pop_front() {
            if self.expand(s, &mut queue) {
                return;
            }
            if self.gave_up {
                return;
            }
        }
    }

    /// Explores the issuers of state `s`; true when a path holds.
    fn expand(&mut self, s: usize, queue: &mut VecDeque<usize>) -> bool {
        let State {
            node, depth, clean, ..
        } = self.states[s];
        let nodes = self.nodes;
        let cas = self.cas;
        let child = &nodes[node].facts;
        if depth + 2 > MAX_DEPTH {
            self.dead.push(DeadEnd {
                state: s,
                problem: Problem::new(
                    ProblemCode::IssuerNotFound,
                    &child.subject,
                    format!("no path to a group CA within {MAX_DEPTH} certificates"),
                ),
            });
            return false;
        }
        if child.issuer_empty {
            // RFC 5280 section 4.1.2.4 and 4.1.2.6: an empty issuer name
            // names no CA, so it is linked to nothing (not even to a CA
            // with an empty subject, which is no valid CA either).
            self.dead.push(DeadEnd {
                state: s,
                problem: Problem::new(
                    ProblemCode::IssuerNotFound,
                    &child.subject,
                    format!(
                        "{} has an empty issuer name, which names no CA (RFC 5280 section 4.1.2.4: a CA's subject, and so its certificates' issuer, must be non-empty)",
                        if child.subject.is_empty() { "a certificate with an empty subject" } else { &child.subject }
                    ),
                ),
            });
            return false;
        }
        let mut failures: Vec<Problem> = Vec::new();
        let mut progressed = false;

        // Group CAs first, those whose SKI matches the child's AKI before others.
        let mut child_canon: Option<Vec<u8>> = None;
        let mut anchors: Vec<usize> = Vec::with_capacity(self.cas.anchors.len());
        for (i, a) in cas.anchors.iter().enumerate() {
            let matches = a.facts.subject_raw == child.issuer_raw || {
                let c = child_canon.get_or_insert_with(|| canonical_name(&child.issuer_raw));
                *c == a.canon_subject
            };
            if matches {
                anchors.push(i);
            }
        }
        order_by_key_id(&mut anchors, child, |i| cas.anchors[i].facts.ski.as_deref());
        for ai in anchors {
            if self.sig_checks >= MAX_SIGNATURE_CHECKS {
                self.gave_up = true;
                break;
            }
            match self.signature(node, Target::Anchor(ai)) {
                SigCheck::Valid => {
                    progressed = true;
                    if self.complete_path(s, ai) {
                        return true;
                    }
                }
                SigCheck::Invalid(why) => {
                    // The child names a group CA as its issuer but another key
                    // signed it: that is the defect even if the search goes on
                    // through a presented look-alike.
                    let problem = self.sig_problem(node, Target::Anchor(ai), why);
                    self.dead.push(DeadEnd { state: s, problem });
                }
                SigCheck::Unsupported(why) => failures.push(Problem::new(
                    ProblemCode::UnsupportedAlgorithm,
                    &child.subject,
                    format!("{}: {why}", child.subject),
                )),
            }
        }

        // Then presented and untrusted certificates with the issuer's name.
        let mut pool = self.pool_candidates(&child.issuer_raw);
        pool.retain(|&p| p != node && !nodes[p].is_anchor);
        order_by_key_id(&mut pool, child, |i| nodes[i].facts.ski.as_deref());
        pool.sort_by_key(|&p| nodes[p].source == Source::Untrusted);
        for p in pool {
            if self.on_path(s, p) {
                continue;
            }
            if self.sig_checks >= MAX_SIGNATURE_CHECKS {
                self.gave_up = true;
                break;
            }
            match self.signature(node, Target::Node(p)) {
                SigCheck::Valid => {
                    progressed = true;
                    let next_clean = clean && self.node_ok(p);
                    let slot = usize::from(!next_clean);
                    if !self.visited[p][slot] {
                        self.visited[p][slot] = true;
                        self.states.push(State {
                            node: p,
                            parent: Some(s),
                            depth: depth + 1,
                            clean: next_clean,
                        });
                        queue.push_back(self.states.len() - 1);
                    }
                }
                SigCheck::Invalid(why) => {
                    failures.push(self.sig_problem(node, Target::Node(p), why))
                }
                SigCheck::Unsupported(why) => failures.push(Problem::new(
                    ProblemCode::UnsupportedAlgorithm,
                    &child.subject,
                    format!("{}: {why}", child.subject),
                )),
            }
        }

        if !progressed {
            let problem = failures
                .into_iter()
                .max_by_key(|p| p.code.rank())
                .unwrap_or_else(|| self.not_found(node));
            self.dead.push(DeadEnd { state: s, problem });
        }
        false
    }

    fn sig_problem(&self, node: usize, issuer: Target, why: String) -> Problem {
        let child = &self.nodes[node].facts;
        let is = self.facts(issuer);
        let why = if why.is_empty() {
            format!(
                "its signature does not verify with the public key of {}",
                is.subject
            )
        } else {
            why
        };
        let hint = match issuer {
            Target::Anchor(_) => format!(
                " (the group CA {}): it was altered, or issued by another key with the group CA's name",
                is.subject
            ),
            Target::Node(_) => String::new(),
        };
        Problem::new(
            ProblemCode::SignatureInvalid,
            &child.subject,
            format!("{}: {why}{hint}", child.subject),
        )
    }

    fn not_found(&self, node: usize) -> Problem {
        let f = &self.nodes[node].facts;
        let cas: Vec<&str> = self.cas.anchors.iter().map(|a| a.subject()).collect();
        let look_alike = self
            .cas
            .anchors
            .iter()
            .find(|a| a.facts.subject_raw == f.subject_raw && a.facts.spki_raw != f.spki_raw);
        let message = if let Some(a) = look_alike {
            format!(
                "{} has the group CA's name but a different public key: it is not the group CA {}",
                f.subject,
                a.subject()
            )
        } else if f.self_issued {
            format!(
                "{} is a self-issued root that is not the group CA ({})",
                f.subject,
                cas.join(", ")
            )
        } else if self.gave_up {
            format!(
                "gave up looking for the issuer of {} after {MAX_SIGNATURE_CHECKS} signature checks",
                f.subject
            )
        } else {
            format!(
                "the issuer of {} ({}) is neither a group CA ({}) nor among the certificates given",
                f.subject,
                f.issuer,
                cas.join(", ")
            )
        };
        let notes: Vec<String> = self
            .cas
            .anchors
            .iter()
            .filter_map(|a| group_ca_not_ca(&a.facts))
            .collect();
        let message = if notes.is_empty() {
            message
        } else {
            format!("{message}; {}", notes.join("; "))
        };
        Problem::new(ProblemCode::IssuerNotFound, &f.subject, message)
    }

    fn state_path(&self, mut s: usize) -> Vec<usize> {
        let mut out = vec![s];
        while let Some(p) = self.states[s].parent {
            out.push(p);
            s = p;
        }
        out.reverse();
        out
    }

    /// Records a path ending at group CA `anchor`; true when it holds.
    fn complete_path(&mut self, s: usize, anchor: usize) -> bool {
        let states = self.state_path(s);
        let a = &self.cas.anchors[anchor].facts;
        let mut facts: Vec<&Facts<'_>> = states
            .iter()
            .map(|&st| &self.nodes[self.states[st].node].facts)
            .collect();
        facts.push(a);
        let mut problems: Vec<(usize, Problem)> =
            self.leaf_problems.iter().map(|p| (0, p.clone())).collect();
        for (i, &st) in states.iter().enumerate().skip(1) {
            let n = &self.nodes[self.states[st].node];
            for p in self.issuer_problems(&n.facts) {
                problems.push((i, p));
            }
            if let Some(p) = check_presented(&n.facts, n.source, n.position) {
                problems.push((i, p));
            }
        }
        let last = facts.len() - 1;
        let note = group_ca_not_ca(a);
        for mut p in self.issuer_problems(a) {
            if let (ProblemCode::IssuerNotCa, Some(note)) = (p.code, &note) {
                p.message = format!("{}; {note}", p.message);
            }
            problems.push((last, p));
        }
        problems.extend(check_pathlen(&facts));
        let holds = problems.is_empty();
        self.complete.push(Candidate {
            problems,
            states,
            anchor,
        });
        holds
    }

    fn verdict(self, leaf: CertSummary) -> Verdict {
        // A path that reaches a group CA: the one with the fewest problems,
        // then the most specific, then the shortest.
        let best = self.complete.iter().min_by_key(|c| {
            let top = c
                .problems
                .iter()
                .map(|(_, p)| p.code.rank())
                .max()
                .unwrap_or(0);
            (c.problems.len(), std::cmp::Reverse(top), c.states.len())
        });
        if let Some(c) = best {
            let mut path: Vec<PathCert> = c
                .states
                .iter()
                .map(|&st| {
                    let n = &self.nodes[self.states[st].node];
                    path_cert(&n.facts, n.source, n.position)
                })
                .collect();
            let a = &self.cas.anchors[c.anchor];
            path.push(path_cert(&a.facts, Source::GroupCa, c.anchor + 1));
            let mut problems = c.problems.clone();
            problems.sort_by_key(|(_, p)| std::cmp::Reverse(p.code.rank()));
            for (i, p) in &problems {
                path[*i].problems.push(p.code);
            }
            let warnings = self.warnings(c);
            return Verdict {
                chains: problems.is_empty(),
                leaf: Some(leaf),
                path,
                reaches_group_ca: true,
                group_ca: Some(c.anchor),
                problems: problems.into_iter().map(|(_, p)| p).collect(),
                warnings,
            };
        }
        // No path reaches a group CA: the most specific dead end, deepest first.
        let dead = self
            .dead
            .iter()
            .max_by_key(|d| (d.problem.code.rank(), self.states[d.state].depth));
        let (states, dead_problem) = match dead {
            Some(d) => (self.state_path(d.state), d.problem.clone()),
            None => (vec![0], self.not_found(0)),
        };
        let mut path: Vec<PathCert> = states
            .iter()
            .map(|&st| {
                let n = &self.nodes[self.states[st].node];
                path_cert(&n.facts, n.source, n.position)
            })
            .collect();
        let mut problems: Vec<(usize, Problem)> = vec![(path.len() - 1, dead_problem)];
        problems.extend(self.leaf_problems.iter().map(|p| (0, p.clone())));
        problems.sort_by_key(|(_, p)| std::cmp::Reverse(p.code.rank()));
        // Keep the chain-level defect first: it is why the path fails.
        if let Some(pos) = problems.iter().position(|(_, p)| {
            matches!(
                p.code,
                ProblemCode::IssuerNotFound
                    | ProblemCode::SignatureInvalid
                    | ProblemCode::UnsupportedAlgorithm
            )
        }) {
            let p = problems.remove(pos);
            problems.insert(0, p);
        }
        for (i, p) in &problems {
            path[*i].problems.push(p.code);
        }
        let mut warnings = Vec::new();
        warnings.extend(self.order_warning.clone());
        warnings.extend(warn_expiring(&self.nodes[0].facts, self.options));
        Verdict {
            chains: false,
            leaf: Some(leaf),
            path,
            reaches_group_ca: false,
            group_ca: None,
            problems: problems.into_iter().map(|(_, p)| p).collect(),
            warnings,
        }
    }

    fn warnings(&self, c: &Candidate) -> Vec<Warning> {
        let mut out = Vec::new();
        let leaf = &self.nodes[0].facts;
        out.extend(self.order_warning.clone());
        out.extend(warn_expiring(leaf, self.options));
        let on_path: Vec<usize> = c.states.iter().map(|&st| self.states[st].node).collect();
        let anchor = &self.cas.anchors[c.anchor].facts;
        for &n in &on_path {
            let f = &self.nodes[n].facts;
            out.extend(warn_weak_rsa(f));
            out.extend(warn_sha1(f));
        }
        out.extend(warn_weak_rsa(anchor));
        // Presented certificates neither on the path nor above the group CA.
        let mut above: Vec<usize> = Vec::new();
        let mut current: &Facts<'_> = anchor;
        for _ in 0..MAX_DEPTH {
            let next = self.nodes.iter().enumerate().find(|(i, n)| {
                n.source == Source::Presented
                    && !n.is_anchor
                    && !above.contains(i)
                    && canonical_name(&n.facts.subject_raw) == canonical_name(&current.issuer_raw)
                    && matches!(check_signature(current, &n.facts), SigCheck::Valid)
            });
            match next {
                Some((i, n)) => {
                    above.push(i);
                    current = &n.facts;
                }
                None => break,
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if n.source == Source::Presented
                && !n.is_anchor
                && !on_path.contains(&i)
                && !above.contains(&i)
            {
                out.push(Warning::new(
                    WarningCode::CertificateNotOnPath,
                    &n.facts.subject,
                    format!(
                        "{} (presented certificate #{}) is not on the path to the group CA; DPS ignores it",
                        n.facts.subject, n.position
                    ),
                ));
            }
        }
        out
    }
}

/// Puts first the candidates whose SKI equals the child's AKI (RFC 5280
/// section 4.2.1.1): a hint for the order, never a decision.
fn order_by_key_id<'k>(
    v: &mut [usize],
    child: &Facts<'_>,
    ski: impl Fn(usize) -> Option<&'k [u8]>,
) {
    if let Some(aki) = child.aki.as_deref() {
        v.sort_by_key(|&i| ski(i) != Some(aki));
    }
}
